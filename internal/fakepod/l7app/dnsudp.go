package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// DNS over UDP, written by hand (RFC 1035), for the topology tests: a server that answers A
// queries (NOERROR with one address, NXDOMAIN for names under missing.), and a client that sends queries over a
// connected socket (write/read) or an unconnected one (sendto/recvfrom).
func init() {
	commands["dns-server"] = dnsServer
	commands["dns-query"] = dnsQuery
}

// dnsServer ADDR: serves on ADDR with an unconnected UDP socket (recvfrom, sendto).
func dnsServer(args []string) error {
	if len(args) != 1 {
		return errors.New("dns-server ADDR")
	}
	pc, err := net.ListenPacket("udp", args[0])
	if err != nil {
		return err
	}
	conn := pc.(*net.UDPConn)
	var c counts
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			resp, qtype, rcode, ok := dnsAnswer(buf[:n])
			if !ok {
				continue
			}
			if _, err := conn.WriteToUDP(resp, from); err == nil {
				c.add(qtype, rcode)
			}
		}
	}()
	serve(&c, func() { conn.Close(); <-done })
	return nil
}

// dnsAnswer answers a query with one question: its response, the query type's name and the
// status kpod reports (ok for NOERROR, error otherwise).
func dnsAnswer(q []byte) (resp []byte, qtype, status string, ok bool) {
	if len(q) < 17 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil, "", "", false
	}
	off := 12
	var labels []string
	for off < len(q) && q[off] != 0 {
		l := int(q[off])
		if off+1+l > len(q) {
			return nil, "", "", false
		}
		labels = append(labels, string(q[off+1:off+1+l]))
		off += 1 + l
	}
	off++ // the root label
	if off+4 > len(q) {
		return nil, "", "", false
	}
	t := binary.BigEndian.Uint16(q[off:])
	question := q[12 : off+4]
	nx := len(labels) > 0 && labels[len(labels)-1] == "missing"
	resp = append(resp, q[0], q[1], 0x81, 0x80) // response, RD, RA
	if nx {
		resp[3] |= 3 // NXDOMAIN
	}
	ans := uint16(0)
	if !nx && t == 1 {
		ans = 1
	}
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, ans)
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, question...)
	if ans == 1 {
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1) // A 192.0.2.1, TTL 60
	}
	name := map[uint16]string{1: "A", 28: "AAAA"}[t]
	if name == "" {
		name = "OTHER"
	}
	status = "ok"
	if nx {
		status = "error"
	}
	return resp, name, status, true
}

// dnsQuery ADDR MODE NAME...: one A query per name, in turn, over a connected socket (MODE
// connected: write, read) or an unconnected one (MODE unconnected: sendto, recvfrom); prints
// the queries by type and status (ok: NOERROR).
func dnsQuery(args []string) error {
	if len(args) < 3 || args[1] != "connected" && args[1] != "unconnected" {
		return errors.New("dns-query ADDR connected|unconnected NAME...")
	}
	raddr, err := net.ResolveUDPAddr("udp", args[0])
	if err != nil {
		return err
	}
	var conn *net.UDPConn
	if args[1] == "connected" {
		conn, err = net.DialUDP("udp", nil, raddr)
	} else {
		conn, err = net.ListenUDP("udp", nil)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	var c counts
	buf := make([]byte, 512)
	for i, name := range args[2:] {
		q := []byte{byte(i >> 8), byte(i), 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0} // RD, one question
		for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
			q = append(q, byte(len(l)))
			q = append(q, l...)
		}
		q = append(q, 0, 0, 1, 0, 1) // type A, class IN
		if args[1] == "connected" {
			_, err = conn.Write(q)
		} else {
			_, err = conn.WriteToUDP(q, raddr)
		}
		if err != nil {
			return err
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var n int
		if args[1] == "connected" {
			n, err = conn.Read(buf)
		} else {
			n, _, err = conn.ReadFromUDP(buf)
		}
		if err != nil {
			return fmt.Errorf("query %d (%s): %w", i, name, err)
		}
		if n < 12 || buf[0] != byte(i>>8) || buf[1] != byte(i) {
			return fmt.Errorf("query %d: bad response", i)
		}
		status := "ok"
		if buf[3]&0xf != 0 {
			status = "error"
		}
		c.add("A", status)
	}
	c.print()
	fmt.Println("queries " + strconv.Itoa(len(args)-2))
	return nil
}
