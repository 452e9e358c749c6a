package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// A client whose response is read before the system call that wrote its request has ended:
// the request's body fills the socket buffers, so the write blocks, and the server answers
// after the headers and reads the body only when the client says (on a second connection)
// that it has read the answer.
func init() {
	commands["http-early-server"] = httpEarlyServer
	commands["http-early-client"] = httpEarlyClient
}

// httpEarlyServer ADDR: per client, a data connection and then a control connection; each
// request on the data connection is answered 200 after its headers, and its body is read
// after one byte arrives on the control connection; one byte back says it has read the body.
func httpEarlyServer(args []string) error {
	if len(args) != 1 {
		return errors.New("http-early-server ADDR")
	}
	return earlyServe(args[0], func(data, ctl net.Conn, c *counts) error {
		r := bufio.NewReader(data)
		for {
			method, n, err := readHead(r)
			if err != nil {
				return err
			}
			if _, err := data.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")); err != nil {
				return err
			}
			if _, err := io.ReadFull(ctl, make([]byte, 1)); err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, r, n); err != nil {
				return err
			}
			c.add(method, "2xx")
			// The next request only now: the server's next read starts with it
			// (a request that begins inside a read is not seen, see the README).
			if _, err := ctl.Write([]byte{'y'}); err != nil {
				return err
			}
		}
	})
}

// earlyServe listens on addr and serves each client's data connection and then its control
// connection with handle, until SIGTERM (then it prints the counts).
func earlyServe(addr string, handle func(data, ctl net.Conn, c *counts) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var c counts
	go func() {
		for {
			data, err := ln.Accept()
			if err != nil {
				return
			}
			ctl, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer data.Close()
				defer ctl.Close()
				if err := handle(data, ctl, &c); err != nil && !errors.Is(err, io.EOF) {
					fmt.Println("server:", err)
				}
			}()
		}
	}()
	serve(&c, func() { _ = ln.Close() })
	return nil
}

// readHead reads a request line and headers: the method and the Content-Length.
func readHead(r *bufio.Reader) (string, int64, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	method, _, _ := strings.Cut(line, " ")
	var n int64
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return "", 0, err
		}
		if h == "\r\n" {
			return method, n, nil
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
			if n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return "", 0, err
			}
		}
	}
}

// httpEarlyClient ADDR N: N POSTs of 32 MiB on a blocking socket with a 64 KiB send buffer,
// each written by one write(2) on one thread while the answer is read on another; prints
// "partial" if a write moved less than the whole request (then the answer was not early).
// Run with GODEBUG=asyncpreemptoff=1: a preemption signal would cut the write short.
func httpEarlyClient(args []string) error {
	if len(args) != 2 {
		return errors.New("http-early-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	fd, ctl, err := earlyDial(args[0])
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	defer ctl.Close()
	const body = 32 << 20
	req := append([]byte(fmt.Sprintf("POST /early HTTP/1.1\r\nHost: kpod\r\nContent-Length: %d\r\n\r\n", body)), make([]byte, body)...)
	var c counts
	for i := 0; i < n; i++ {
		done := earlyWrite(fd, req)
		head := ""
		buf := make([]byte, 256)
		for !strings.HasSuffix(head, "\r\n\r\n") {
			r, err := syscall.Read(fd, buf)
			if err != nil || r == 0 {
				return fmt.Errorf("reading the answer: %v", err)
			}
			head += string(buf[:r])
		}
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			return fmt.Errorf("answer %q", head)
		}
		if err := earlyDone(ctl, done); err != nil {
			return err
		}
		c.add("POST", "2xx")
	}
	c.print()
	return nil
}

// earlyDial connects the data socket (blocking, a 64 KiB send buffer, raw: every write is
// one write(2)) and the control connection of an early client.
func earlyDial(addr string) (int, net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return 0, nil, err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return 0, nil, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 64<<10); err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	ctl, err := net.Dial("tcp", addr)
	if err != nil {
		syscall.Close(fd)
		return 0, nil, err
	}
	return fd, ctl, nil
}

// earlyWrite writes req with one write(2) on another thread; prints "partial" if the write
// moved less (then its answer was not early) and writes the rest.
func earlyWrite(fd int, req []byte) <-chan error {
	done := make(chan error, 1)
	go func() {
		w, err := syscall.Write(fd, req)
		if err == nil && w != len(req) {
			fmt.Println("partial", w)
			_, err = syscall.Write(fd, req[w:])
		}
		done <- err
	}()
	return done
}

// fdReader reads a raw socket with read(2).
type fdReader int

func (f fdReader) Read(b []byte) (int, error) {
	n, err := syscall.Read(int(f), b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	if n < 0 {
		n = 0
	}
	return n, err
}

// earlyDone tells the server that the answer was read, waits for the request's write to end
// and for the server's word that it read the body (its next read starts with the next request).
func earlyDone(ctl net.Conn, done <-chan error) error {
	if _, err := ctl.Write([]byte{'x'}); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	_, err := io.ReadFull(ctl, make([]byte, 1))
	return err
}
