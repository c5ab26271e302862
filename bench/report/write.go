package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Files a run writes besides its plots.
const (
	ResultsJSON = "results.json"
	SummaryMD   = "summary.md"
)

// Write summarizes every part, then writes its plots, results.json and
// summary.md into dir.
func Write(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range r.Parts {
		Summarize(p)
		if err := WritePlots(dir, p); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ResultsJSON, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ResultsJSON), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, SummaryMD), []byte(Markdown(r, ".", "#")), 0o644)
}

// Read loads a results.json.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}
