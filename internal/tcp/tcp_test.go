package tcp

import "testing"

func TestStatsAdd(t *testing.T) {
	a := Stats{BytesSent: 1, Retransmits: 2}
	a.RTT.Counts[3], a.RTT.SumNs = 1, 5000
	b := Stats{BytesSent: 10, BytesReceived: 3, ConnsActive: 1, ConnsPassive: 2, Retransmits: 1}
	b.RTT.Counts[3], b.RTT.SumNs = 2, 7000
	a.Add(&b)
	if a.BytesSent != 11 || a.BytesReceived != 3 || a.ConnsActive != 1 || a.ConnsPassive != 2 ||
		a.Retransmits != 3 || a.RTT.Count() != 3 || a.RTT.SumNs != 12000 {
		t.Fatalf("got %+v", a)
	}
}
