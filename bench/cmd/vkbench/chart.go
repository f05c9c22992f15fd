package main

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series colours: colour-blind safe (Okabe-Ito blue and orange).
var (
	vkColor   = color.RGBA{R: 0x00, G: 0x72, B: 0xB2, A: 0xFF}
	kwokColor = color.RGBA{R: 0xE6, G: 0x9F, B: 0x00, A: 0xFF}
)

// writeChart draws the start-latency CDFs of vk-flightctl and KWOK, bare
// pods and Deployment side by side, every repetition pooled, as a PNG.
// A CDF rather than a histogram: the tails (p99) are what the issue's
// targets are about, and a CDF shows them without choosing bins.
func writeChart(path string, rep *report) error {
	var row []*plot.Plot
	for _, kind := range []string{"bare", "deployment"} {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: %d pods x %d rep(s)", map[string]string{"bare": "bare pods (nodeName)", "deployment": "Deployment"}[kind], rep.Config.Pods, rep.Config.Reps)
		p.X.Label.Text = "creation to Ready (s)"
		p.Y.Label.Text = "fraction of pods Ready"
		// Headroom above 1 keeps the legend off the curves, which never
		// go above 1; the ticks stop at 1.
		p.Y.Min, p.Y.Max = 0, 1.2
		p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"},
			{Value: 0.75, Label: "0.75"}, {Value: 0.9, Label: "0.9"}, {Value: 1, Label: "1"}}
		p.X.Min = 0
		p.Add(plotter.NewGrid())
		p.Legend.Top = true
		p.Legend.Left = true
		p.Legend.XOffs = vg.Points(8)
		for _, s := range []struct {
			target, name string
			c            color.Color
		}{{"vk", "vk-flightctl", vkColor}, {"kwok", "KWOK", kwokColor}} {
			lat := pooled(rep, s.target, kind)
			if len(lat) == 0 {
				continue
			}
			l, err := plotter.NewLine(cdf(lat))
			if err != nil {
				return err
			}
			l.StepStyle = plotter.PostStep
			l.Color = s.c
			l.Width = vg.Points(2)
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s (p50 %.2fs, p99 %.2fs)", s.name, pct(lat, 50), pct(lat, 99)), l)
		}
		row = append(row, p)
	}
	img := vgimg.New(14*vg.Inch, 5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(row), PadX: vg.Inch / 2, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for i, p := range row {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cdf turns sorted samples into the points of an empirical CDF drawn as a
// post-step line: it rises by 1/n at each sample.
func cdf(sorted []float64) plotter.XYs {
	n := float64(len(sorted))
	xys := make(plotter.XYs, 0, len(sorted)+1)
	xys = append(xys, plotter.XY{X: sorted[0], Y: 0})
	for i, x := range sorted {
		xys = append(xys, plotter.XY{X: x, Y: float64(i+1) / n})
	}
	return xys
}
