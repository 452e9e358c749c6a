// Package hist is the Go side of the log2 latency histograms kept by kpod's BPF programs
// (struct kpod_hist in bpf/include/kpod.h).
package hist

import (
	"math"
	"math/bits"
)

// Slots must equal KPOD_SLOTS in bpf/include/kpod.h.
const Slots = 27

// Hist is a cumulative latency histogram: Counts[k] holds values in (2^(k-1), 2^k]
// microseconds (Counts[0]: at most 1 us; the last slot: everything above the last bound).
type Hist struct {
	SumNs  uint64
	Counts [Slots]uint64
}

var bounds = func() []float64 {
	b := make([]float64, Slots-1)
	for k := range b {
		b[k] = math.Ldexp(1e-6, k) // 2^k us in seconds
	}
	return b
}()

// Bounds returns the explicit bucket upper bounds in seconds (1us, 2us, 4us, ... 2^25 us);
// bucket i of a Hist counts values <= Bounds()[i] and > Bounds()[i-1].
func Bounds() []float64 { return bounds }

// Decode is the one conversion from a BPF struct kpod_hist (its sum_ns and slots fields) to
// a Hist.
func Decode(sumNs uint64, slots [Slots]uint64) Hist { return Hist{SumNs: sumNs, Counts: slots} }

// Add adds o into h.
func (h *Hist) Add(o *Hist) {
	h.SumNs += o.SumNs
	for i := range h.Counts {
		h.Counts[i] += o.Counts[i]
	}
}

// Count is the number of recorded values.
func (h *Hist) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// SumSeconds is the sum of recorded values in seconds.
func (h *Hist) SumSeconds() float64 { return float64(h.SumNs) / 1e9 }

// Record adds one value of ns nanoseconds, in the slot the BPF side would use (values read
// in user space: the RTT of live sockets).
func (h *Hist) Record(ns uint64) {
	h.Counts[Slot(ns)]++
	h.SumNs += ns
}

// Slot returns the slot the BPF side puts a latency of ns nanoseconds in (kpod_slot in
// kpod.h: 1 + floor(log2((ns-1)/1000)) above 1 us).
func Slot(ns uint64) int {
	if ns <= 1000 {
		return 0
	}
	return min(bits.Len64((ns-1)/1000), Slots-1)
}

// ByKey is a set of histograms by dimension (device, soft IRQ vector).
type ByKey[K comparable] map[K]Hist

// Add merges o into s and returns s.
func (s ByKey[K]) Add(o ByKey[K]) ByKey[K] {
	if s == nil {
		s = ByKey[K]{}
	}
	for k, h := range o {
		v := s[k]
		v.Add(&h)
		s[k] = v
	}
	return s
}
