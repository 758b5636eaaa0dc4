package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Files Write writes into its directory, besides the chart PNGs.
const (
	JSONFile = "report.json"
	HTMLFile = "report.html"
)

// Write renders r into dir, creating it if needed: report.json (r encoded),
// one PNG per chart (throughput.png, latency.png, lag.png, emails.png,
// stock.png) and report.html, which is self-contained. It returns the paths
// written, in that order. A chart without data is still drawn, as a
// placeholder that says so.
func Write(dir string, r *Report) ([]string, error) {
	if r == nil {
		return nil, fmt.Errorf("report: nil report")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var written []string
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		written = append(written, path)
		return nil
	}

	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return written, fmt.Errorf("report: encode %s: %w", JSONFile, err)
	}
	if err := write(JSONFile, append(js, '\n')); err != nil {
		return written, err
	}

	charts := buildCharts(r)
	svgs := make([]htmlChart, 0, len(charts))
	for _, nc := range charts {
		png, err := renderPNG(nc.Chart)
		if err != nil {
			return written, fmt.Errorf("report: draw %s: %w", nc.File, err)
		}
		if err := write(nc.File, png); err != nil {
			return written, err
		}
		svg, err := renderSVG(nc.Chart)
		if err != nil {
			return written, fmt.Errorf("report: draw %s as SVG: %w", nc.File, err)
		}
		svgs = append(svgs, htmlChart{Title: nc.Title, File: nc.File, SVG: svg})
	}

	var page bytes.Buffer
	if err := renderHTML(&page, r, svgs); err != nil {
		return written, fmt.Errorf("report: %s: %w", HTMLFile, err)
	}
	if err := write(HTMLFile, page.Bytes()); err != nil {
		return written, err
	}
	return written, nil
}

// ChartFiles are the names of the PNG charts Write writes, in order.
func ChartFiles() []string {
	charts := buildCharts(&Report{})
	names := make([]string, len(charts))
	for i, c := range charts {
		names[i] = c.File
	}
	return names
}
