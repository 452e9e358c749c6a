package hist

import "testing"

func TestSlotMatchesBounds(t *testing.T) {
	b := Bounds()
	if len(b) != Slots-1 {
		t.Fatalf("%d bounds for %d slots", len(b), Slots)
	}
	// Every value lands in the first bucket whose bound is >= the value.
	values := []uint64{0, 1, 999, 1000, 1001, 1999, 2000, 2001, 4000, 4001, 1 << 20, 33554432000, 33554432001, 1 << 62}
	for k := 0; k < Slots; k++ { // each bound and just above it
		values = append(values, 1000<<k, 1000<<k+1)
	}
	for _, ns := range values {
		s := Slot(ns)
		v := float64(ns) / 1e9
		if s < Slots-1 && v > b[s]*(1+1e-12) {
			t.Errorf("ns=%d in slot %d but above its bound %g", ns, s, b[s])
		}
		if s > 0 && v <= b[s-1] {
			t.Errorf("ns=%d in slot %d but not above the previous bound %g", ns, s, b[s-1])
		}
	}
	if got := Slot(1 << 62); got != Slots-1 {
		t.Errorf("huge value in slot %d, want overflow slot %d", got, Slots-1)
	}
}

func TestAddCountSum(t *testing.T) {
	var a, b Hist
	a.Counts[0], a.Counts[3], a.SumNs = 2, 1, 5000
	b.Counts[3], b.SumNs = 4, 20000
	a.Add(&b)
	if a.Count() != 7 || a.Counts[3] != 5 || a.SumSeconds() != 25e-6 {
		t.Fatalf("got %+v", a)
	}
}

func TestRecord(t *testing.T) {
	var h Hist
	for _, ns := range []uint64{500, 1000, 1001, 2000, 2001, 1 << 62} {
		h.Record(ns)
	}
	want := Hist{SumNs: 500 + 1000 + 1001 + 2000 + 2001 + 1<<62}
	want.Counts[0], want.Counts[1], want.Counts[2], want.Counts[Slots-1] = 2, 2, 1, 1
	if h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
}
