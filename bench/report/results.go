package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func sectionMarkers(name string) (begin, end string) {
	return "<!-- scenario:" + name + " -->", "<!-- /scenario:" + name + " -->"
}

// ReplaceSection returns doc with the section delimited by
// "<!-- scenario:NAME -->" and "<!-- /scenario:NAME -->" replaced by body
// (markers kept), or with the section appended when doc has none.
// Everything outside the section is kept byte for byte.
func ReplaceSection(doc, name, body string) (string, error) {
	begin, end := sectionMarkers(name)
	block := begin + "\n" + strings.TrimRight(body, "\n") + "\n" + end
	i := strings.Index(doc, begin)
	if i < 0 {
		if strings.Contains(doc, end) {
			return "", fmt.Errorf("section %s: end marker without a start marker", name)
		}
		sep := ""
		switch {
		case doc == "":
		case strings.HasSuffix(doc, "\n\n"):
		case strings.HasSuffix(doc, "\n"):
			sep = "\n"
		default:
			sep = "\n\n"
		}
		return doc + sep + block + "\n", nil
	}
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return "", fmt.Errorf("section %s: start marker without an end marker", name)
	}
	if strings.Contains(doc[i+j+len(end):], begin) {
		return "", fmt.Errorf("section %s appears twice", name)
	}
	return doc[:i] + block + doc[i+j+len(end):], nil
}

// UpdateResults copies the report's plots from outDir to
// resultsDir/<scenario>/ and replaces (or appends) the scenario's section
// of the markdown file at resultsMD, whose image links are relative to it.
func UpdateResults(resultsMD, resultsDir, outDir string, r *Report) error {
	dst := filepath.Join(resultsDir, r.Scenario)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, p := range r.Parts {
		for _, f := range p.Plots {
			b, err := os.ReadFile(filepath.Join(outDir, f))
			if err != nil {
				return fmt.Errorf("copying plot: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
				return fmt.Errorf("copying plot: %w", err)
			}
		}
	}
	rel, err := filepath.Rel(filepath.Dir(resultsMD), dst)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(resultsMD)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	out, err := ReplaceSection(string(doc), r.Scenario, Markdown(r, filepath.ToSlash(rel), "##"))
	if err != nil {
		return fmt.Errorf("%s: %w", resultsMD, err)
	}
	return os.WriteFile(resultsMD, []byte(out), 0o644)
}
