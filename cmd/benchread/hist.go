package main

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, like HdrHistogram: durations below
// 2^histSubBits ns each have a bucket of their own, and every power of two
// above is split into 2^(histSubBits-1) equal buckets. A bucket is then at
// most 1/256 of its lower bound wide, and the midpoint it reports is
// within 0.2 % of any duration in it: finer than the noise of a bench,
// in a fixed array that recording never allocates, whatever the latency.
const (
	histSubBits = 9
	histHalf    = 1 << (histSubBits - 1)
	// histMaxBits bounds the durations told apart: 2^40 ns is over 18
	// minutes; a longer one counts in the last bucket.
	histMaxBits = 40
	histBuckets = (histMaxBits - histSubBits + 2) * histHalf
)

// hist counts request latencies. Its zero value is empty and ready; it is
// not safe for concurrent use: each load worker records into its own and
// the results are merged.
type hist struct {
	counts   [histBuckets]uint64
	n        uint64
	min, max time.Duration
}

// record counts one latency; a negative one counts as 0.
func (h *hist) record(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

// merge adds o's counts to h.
func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// count is how many latencies were recorded.
func (h *hist) count() uint64 { return h.n }

// quantile returns the latency at quantile q (0-1) by nearest rank: the
// midpoint of the bucket that holds the ceil(q*n)-th smallest latency,
// kept within the smallest and largest recorded; the smallest and the
// largest themselves are exact. It is 0 when h is empty.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	// The ends are known exactly.
	switch rank {
	case 1:
		return h.min
	case h.n:
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			mid := time.Duration(low + width/2)
			return min(max(mid, h.min), h.max)
		}
	}
	return h.max // not reached: the counts add up to n
}

// bucketOf returns the index of the bucket that counts v nanoseconds.
func bucketOf(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	if v >= 1<<histMaxBits {
		return histBuckets - 1
	}
	// v>>shift keeps v's top histSubBits bits: a value in
	// [histHalf, 2*histHalf) that names the bucket within v's power of two.
	shift := bits.Len64(v) - histSubBits
	return (shift+1)*histHalf + int(v>>shift) - histHalf
}

// bucketRange returns the smallest value bucket i counts and how many
// consecutive values it counts.
func bucketRange(i int) (low, width uint64) {
	if i < 1<<histSubBits {
		return uint64(i), 1
	}
	shift := i/histHalf - 1
	m := uint64(i%histHalf + histHalf)
	return m << shift, 1 << shift
}
