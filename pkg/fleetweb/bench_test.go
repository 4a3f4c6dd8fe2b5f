package fleetweb

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/test/browser"
)

// The fleet the benchmarks serve: 10 clusters x 500 nodes x 8 GPUs (40,000
// GPUs), about three pods per node holding random shares. The API servers
// are not involved: the objects are built in memory, once.
const benchClusters, benchNodes, benchGPUs = 10, 500, 8

// BenchmarkFleetJSON measures what the server does for a new read: build
// the State from the members' objects (pkg/fleet, as the Reader does after
// listing) and encode the JSON the page is drawn from.
func BenchmarkFleetJSON(b *testing.B) {
	inputs := largeInputs(benchClusters, benchNodes, benchGPUs)
	st := fleet.NewState(config.Default(), testReadAt, inputs)
	data, err := json.Marshal(&st.Fleet)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(data)
	_ = zw.Close()
	report := func(b *testing.B) {
		b.ReportMetric(float64(len(data)), "json-bytes")
		b.ReportMetric(float64(buf.Len()), "gzip-bytes")
	}
	b.Run("state+json", func(b *testing.B) {
		for b.Loop() {
			st := fleet.NewState(config.Default(), testReadAt, inputs)
			if _, err := json.Marshal(&st.Fleet); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("state", func(b *testing.B) {
		for b.Loop() {
			fleet.NewState(config.Default(), testReadAt, inputs)
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(&st.Fleet); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("gzip", func(b *testing.B) {
		for b.Loop() {
			zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
			_, _ = zw.Write(data)
			_ = zw.Close()
		}
	})
}

// BenchmarkRenderChromium measures how long headless Chromium takes to
// load the page, fetch that fleet's JSON from the real server and draw it
// (every table row and all 40,000 tiles), until the page marks it drawn.
func BenchmarkRenderChromium(b *testing.B) {
	exe := browser.Require(b)
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	st := fleet.NewState(config.Default(), testReadAt, largeInputs(benchClusters, benchNodes, benchGPUs))
	url := servePage(ctx, b, Static{State: st})
	br := browser.New(ctx, b, browser.Options{ExecPath: exe, Width: 1440, Height: 900})
	b.ResetTimer()
	for b.Loop() {
		if err := br.Navigate(url); err != nil {
			b.Fatal(err)
		}
		if err := br.WaitFleet(st.Fleet.ReadAt, 5*time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n, err := browser.Eval[int](br, `document.querySelectorAll('#mosaic-clusters .gpu').length`)
	if err != nil || n != benchClusters*benchNodes*benchGPUs {
		b.Fatalf("the page drew %d tiles (%v), want %d", n, err, benchClusters*benchNodes*benchGPUs)
	}
	elements, _ := browser.Eval[int](br, `document.getElementsByTagName('*').length`)
	b.ReportMetric(float64(elements), "dom-elements")
	if p := br.Problems(); len(p) > 0 {
		b.Errorf("console errors: %q", p)
	}
}
