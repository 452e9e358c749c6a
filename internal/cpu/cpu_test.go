package cpu

import (
	"testing"

	"github.com/kpod-project/kpod/internal/fakepod"
)

func TestSmoke(t *testing.T) {
	fakepod.RequireRoot(t)
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, p := range c.Obj.Programs {
		t.Logf("%s %s %s %v", p.Name, p.Hook, p.Kind, p.LoadDuration)
	}
	pod := fakepod.New(t, fakepod.Options{})
	ctr := pod.AddContainer()
	ctr.Run("pingpong", "10000")
	st, err := c.Collect(map[uint64]bool{ctr.CgroupID: true})
	if err != nil {
		t.Fatal(err)
	}
	s := st[ctr.CgroupID]
	t.Logf("switches=%d rq count=%d sum=%.6fs", s.Switches, s.RunQueue.Count(), s.RunQueue.SumSeconds())
}
