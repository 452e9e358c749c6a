package bpfload

import (
	"structs"
	"testing"
)

type histVal struct {
	_     structs.HostLayout
	Count uint64
	Time  struct {
		_     structs.HostLayout
		SumNs uint64
		Slots [3]uint64
	}
}

type dimKey struct {
	_    structs.HostLayout
	Cgid uint64
	Vec  uint32
	Pad  uint32
}

func TestCheckLayout(t *testing.T) {
	if err := checkLayout[uint64, histVal](); err != nil {
		t.Errorf("u64 key, u64-only value: %v", err)
	}
	if err := checkLayout[dimKey, uint64](); err != nil {
		t.Errorf("struct key starting with the cgroup id: %v", err)
	}
	type badKey struct {
		Vec  uint32
		Cgid uint64
	}
	if err := checkLayout[badKey, uint64](); err == nil {
		t.Error("a key that does not start with a u64 was accepted")
	}
	type badVal struct {
		N uint64
		F uint32
	}
	if err := checkLayout[uint64, badVal](); err == nil {
		t.Error("a value with a u32 field was accepted")
	}
}

func TestAddU64(t *testing.T) {
	var a, b histVal
	a.Count, a.Time.SumNs, a.Time.Slots[2] = 1, 10, 3
	b.Count, b.Time.SumNs, b.Time.Slots[2], b.Time.Slots[0] = 2, 5, 4, 7
	addU64(&a, &b)
	if a.Count != 3 || a.Time.SumNs != 15 || a.Time.Slots != [3]uint64{7, 0, 7} {
		t.Errorf("addU64: %+v", a)
	}
}

func TestCgroupOf(t *testing.T) {
	k := dimKey{Cgid: 42, Vec: 3}
	if got := cgroupOf(&k); got != 42 {
		t.Errorf("cgroupOf = %d", got)
	}
}

// TestSweeper: an id missing from the live tree is dead only the second time in a row, and
// the node-level id is never dead.
func TestSweeper(t *testing.T) {
	var s Sweeper
	seen := []uint64{NodeID, 7, 8}
	live := map[uint64]bool{8: true}
	if d := s.Dead(seen, live); len(d) != 0 {
		t.Errorf("first miss: dead %v, want none", d)
	}
	if d := s.Dead(seen, live); len(d) != 1 || d[0] != 7 {
		t.Errorf("second miss: dead %v, want [7]", d)
	}
	// 9 appears dead once, then is live (created between the tree walk and the map read).
	s.Dead([]uint64{9}, nil)
	if d := s.Dead([]uint64{9}, map[uint64]bool{9: true}); len(d) != 0 {
		t.Errorf("a cgroup that came alive was swept: %v", d)
	}
}

func TestNilCollector(t *testing.T) {
	var c *Collector
	if err := c.Close(); err != nil || c.Objects() != nil {
		t.Errorf("nil collector: Close %v, Objects %v", err, c.Objects())
	}
}
