package live_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/live"
)

// BenchmarkHubFanOut15000: one event to 15,000 subscribers of market data
// (the load of issue 7), each draining its stream. Reports the time to
// deliver an event to all and the heap held per subscription.
func BenchmarkHubFanOut15000(b *testing.B) {
	const subscribers = 15000
	src := newMemSource()
	h := live.NewHub(src, live.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Run(ctx)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	subs := make([]*live.Subscription, subscribers)
	// One filter for all, as the func literal it replaces was one value:
	// the same scenario, now matched on the event's topic key.
	riskScores := obsqra.EventFilter{Rules: []obsqra.EventRule{{Topic: obsqra.TopicRiskScored}}}
	for i := range subs {
		s, err := h.Subscribe(ctx, 0, riskScores, nil)
		if err != nil {
			b.Fatal(err)
		}
		subs[i] = s
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSub := float64(after.HeapAlloc-before.HeapAlloc) / subscribers

	var wg sync.WaitGroup
	for _, s := range subs {
		go func() {
			for {
				if _, ok := s.Next(ctx); !ok {
					return
				}
				wg.Done()
			}
		}()
	}
	for b.Loop() {
		wg.Add(subscribers)
		src.append(obsqra.Event{Topic: "risk.scored", Payload: []byte(`{"score":42}`)})
		wg.Wait()
	}
	b.ReportMetric(perSub, "heapB/sub")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/subscribers, "ns/delivery")
}

// metricsPayload is a metrics.ingested payload of the usual size (about
// 290 bytes).
const metricsPayload = `{"protocol":"nostra-lending","protocolId":3,"id":123456,"observedAt":"2025-06-01T12:00:00Z","apyBps":512,` +
	`"tvlUsd":"123456789.25","utilizationBps":7421,"volatilityBps":113,"liquidityTier":0,"source":"defillama",` +
	`"createdAt":"2025-06-01T12:00:03.123456Z","note":"padding to the size of a real sample's payload......"}`

// BenchmarkHubReplayHeld: the security review's load, 4 connections of 100
// subscriptions each replaying 5,000 events to clients that read nothing.
// Reports the heap the hub holds per subscription once every replay has
// stopped reading.
func BenchmarkHubReplayHeld(b *testing.B) {
	const (
		conns   = 4
		perConn = 100
		events  = 5000
	)
	for b.Loop() {
		src := newMemSource()
		for range events {
			src.append(obsqra.Event{Topic: "metrics.ingested", Payload: []byte(metricsPayload)})
		}
		h := live.NewHub(src, live.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.Run(ctx); close(done) }()

		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		subs := make([]*live.Subscription, 0, conns*perConn)
		for c := range conns {
			cctx := obsqra.NewContextWithClient(ctx, &obsqra.Client{Address: fmt.Sprint("192.0.2.", c)})
			for range perConn {
				cursor := int64(1)
				s, err := h.Subscribe(cctx, 0, obsqra.EventFilter{}, &cursor)
				if err != nil {
					b.Fatal(err)
				}
				subs = append(subs, s)
			}
		}
		// The replays read until their budgets or queues are full; a
		// benchmark may wait for them to be still.
		for still, last := 0, -1; still < 10; {
			time.Sleep(20 * time.Millisecond)
			src.mu.Lock()
			n := len(src.reads)
			src.mu.Unlock()
			if n == last {
				still++
			} else {
				still, last = 0, n
			}
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(held/float64(len(subs)), "heapB/sub")
		b.ReportMetric(held/(1<<20), "heapMiB")
		for _, s := range subs {
			s.Close()
		}
		cancel()
		<-done
	}
}
