package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func init() {
	commands["dns-client"] = dnsClient
}

// dnsClient ADDR N NAME:TYPE...: N queries of each NAME:TYPE (TYPE A, AAAA, MX, TXT, ...)
// over UDP, one socket, each waiting for its answer; counts "<TYPE> ok|error" by rcode
// (NOERROR is ok).
func dnsClient(args []string) error {
	if len(args) < 3 {
		return errors.New("dns-client ADDR N NAME:TYPE...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("udp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	var c counts
	buf := make([]byte, 1500)
	for i := 0; i < n; i++ {
		for _, q := range args[2:] {
			name, typ, ok := strings.Cut(q, ":")
			if !ok {
				return fmt.Errorf("%q is not NAME:TYPE", q)
			}
			t, ok := dnsTypes[typ]
			if !ok {
				return fmt.Errorf("unknown type %s", typ)
			}
			id := uint16(rand.Uint32())
			msg := dnsmessage.Message{
				Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
				Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: t, Class: dnsmessage.ClassINET}},
			}
			b, err := msg.Pack()
			if err != nil {
				return err
			}
			if _, err := conn.Write(b); err != nil {
				return err
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			m, err := conn.Read(buf)
			if err != nil {
				return err
			}
			var resp dnsmessage.Message
			if err := resp.Unpack(buf[:m]); err != nil {
				return err
			}
			if resp.ID != id {
				return fmt.Errorf("answer id %d, query id %d", resp.ID, id)
			}
			status := "ok"
			if resp.RCode != dnsmessage.RCodeSuccess {
				status = "error"
			}
			c.add(typ, status)
		}
	}
	c.print()
	return nil
}

var dnsTypes = map[string]dnsmessage.Type{
	"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT,
	"NS": dnsmessage.TypeNS, "SRV": dnsmessage.TypeSRV, "PTR": dnsmessage.TypePTR, "SOA": dnsmessage.TypeSOA,
	"CNAME": dnsmessage.TypeCNAME,
}
