package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
)

// The topology tests' TCP workload (no application protocol): a sink that accepts
// connections and reads them to EOF, and a client that opens one connection to each of many
// addresses. Both print what they did:
//
//	count connect ok <connections>
//	bytes <n>
func init() {
	commands["tcp-sink"] = tcpSink
	commands["tcp-fanout"] = tcpFanout
}

// tcpSink ADDR: accepts on ADDR, reads every connection to EOF; on SIGTERM prints the
// connections it accepted and the bytes it read.
func tcpSink(args []string) error {
	if len(args) != 1 {
		return errors.New("tcp-sink ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	var bytes atomic.Int64
	var wg sync.WaitGroup
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _ := io.Copy(io.Discard, conn)
				bytes.Add(n)
				conn.Close()
				c.add("connect", "ok")
			}()
		}
	}()
	serve(&c, func() { ln.Close(); wg.Wait() })
	fmt.Printf("bytes %d\n", bytes.Load())
	return nil
}

// tcpFanout FIRST N PORT SIZE: one connection to each of the N addresses from FIRST on
// (FIRST, FIRST+1, ...) at PORT, one after the other; each writes SIZE bytes, closes its
// side and waits for the sink's close.
func tcpFanout(args []string) error {
	if len(args) != 4 {
		return errors.New("tcp-fanout FIRST N PORT SIZE")
	}
	a, err := netip.ParseAddr(args[0])
	if err != nil {
		return err
	}
	n, err1 := strconv.Atoi(args[1])
	port, err2 := strconv.Atoi(args[2])
	size, err3 := strconv.Atoi(args[3])
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	buf := make([]byte, size)
	var c counts
	var sent int
	for i := 0; i < n; i++ {
		conn, err := net.Dial("tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err != nil {
			return err
		}
		w, err := conn.Write(buf)
		sent += w
		if err != nil {
			return err
		}
		// Our FIN, then the sink's: once its FIN is read, this socket has closed in the
		// kernel (TIME_WAIT), so every connection's counters are final when we exit.
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, conn); err != nil {
			return err
		}
		if err := conn.Close(); err != nil {
			return err
		}
		c.add("connect", "ok")
		a = a.Next()
	}
	c.print()
	fmt.Printf("bytes %d\n", sent)
	return nil
}
