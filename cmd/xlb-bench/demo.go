package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/term"

	"github.com/xlbproject/xlb/internal/demo"
	"github.com/xlbproject/xlb/internal/netlab"
)

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("xlb-bench demo", flag.ContinueOnError)
	xlbd := fs.String("xlbd", "", "xlbd binary (default: next to xlb-bench, then $PATH)")
	hold := fs.String("hold", "auto", "keep the lab up until Ctrl-C: yes, no, or auto (yes on a terminal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := findXlbd(*xlbd)
	if err != nil {
		return err
	}
	var keep bool
	switch *hold {
	case "yes":
		keep = true
	case "no":
	case "auto":
		keep = term.IsTerminal(int(os.Stdin.Fd()))
	default:
		return fmt.Errorf("--hold %q: want yes, no or auto", *hold)
	}
	_, err = demo.Run(ctx, demo.Options{Xlbd: bin, Hold: keep, Out: stdout})
	return err
}

func findXlbd(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), "xlbd"); fileExists(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath("xlbd")
	if err != nil {
		return "", fmt.Errorf("xlbd not found: build it (make build) or pass --xlbd")
	}
	return p, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func runLab(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 || args[0] != "cleanup" {
		return fmt.Errorf("usage: xlb-bench lab cleanup")
	}
	removed, err := netlab.CleanupStale(ctx)
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	if err != nil {
		return err
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing left behind")
	}
	return nil
}
