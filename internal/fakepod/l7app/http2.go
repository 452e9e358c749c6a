package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c" //nolint:staticcheck // the one server that takes both prior knowledge and the HTTP/1.1 upgrade
)

func init() {
	commands["h2-server"] = h2Server
	commands["h2-client"] = h2Client
	commands["h2-junk-server"] = h2JunkServer
	commands["h2-junk-client"] = h2JunkClient
	commands["upgrade-server"] = upgradeServer
	commands["upgrade-client"] = upgradeClient
}

// h2Routes are the HTTP/2 server's paths and their statuses: static-table ones (200, 404, 500)
// and others that HPACK sends as literals, then as references to the dynamic table (201, 503).
var h2Routes = map[string]int{
	"/ok": http.StatusOK, "/created": http.StatusCreated, "/missing": http.StatusNotFound,
	"/fail": http.StatusInternalServerError, "/unavailable": http.StatusServiceUnavailable,
	"/slow": http.StatusOK, "/big": http.StatusOK,
}

// h2Big is the value of a header sent with /big, in the request and in the response: larger
// than a frame (16 KiB), its header block goes on in a CONTINUATION frame, the value split
// between the two; larger than HPACK's table, it is not inserted.
var h2Big = strings.Repeat("kpod-big-header-", 2000) // 32000 bytes, 23000 Huffman-coded

// h2Server ADDR: an HTTP/2 server in clear text (golang.org/x/net/http2 behind h2c: prior
// knowledge and the HTTP/1.1 upgrade) answering h2Routes; /slow answers after 50 ms, /big
// with the X-Kpod-Big header (and wants it in the request). It counts
// the HTTP/2 requests it served by method and status class (an upgrading request is served
// over HTTP/2: stream 1).
func h2Server(args []string) error {
	if len(args) != 1 {
		return errors.New("h2-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		code, ok := h2Routes[r.URL.Path]
		if !ok {
			code = http.StatusNotFound
		}
		switch r.URL.Path {
		case "/slow":
			time.Sleep(50 * time.Millisecond)
		case "/big":
			if r.Header.Get("X-Kpod-Big") != h2Big {
				code = http.StatusBadRequest
			}
			w.Header().Set("X-Kpod-Big", h2Big)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("kpod\n"))
		status := strconv.Itoa(code/100) + "xx"
		// An upgrading request comes with its HTTP/1.1 headers, and is answered on stream 1.
		upgraded := r.ProtoMajor == 1 && strings.EqualFold(r.Header.Get("Upgrade"), "h2c")
		if r.ProtoMajor != 2 && !upgraded {
			status = r.Proto // not HTTP/2: a count no test expects
		}
		c.add(r.Method, status)
	})
	srv := &http.Server{Handler: h2c.NewHandler(handler, &http2.Server{})}
	go func() { _ = srv.Serve(ln) }()
	serve(&c, func() { _ = srv.Shutdown(context.Background()) })
	return nil
}

// h2Client URL N CONC METHOD:PATH...: CONC goroutines each send N rounds of the METHOD:PATH
// requests over one HTTP/2 connection (prior knowledge: golang.org/x/net/http2's Transport on
// a plain TCP connection), concurrently; a request of /big has the X-Kpod-Big header. Prints the counts by method and status class, per
// method "time <method> <ns>" (the requests' durations as the client measured them: request
// sent to body read) and "conns <n>", the connections it opened.
func h2Client(args []string) error {
	if len(args) < 4 {
		return errors.New("h2-client URL N CONC METHOD:PATH...")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conc, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var dials atomic.Int64
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var c counts
	var mu sync.Mutex
	spent := map[string]time.Duration{}
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				for _, mp := range args[3:] {
					method, path, ok := strings.Cut(mp, ":")
					if !ok {
						errs <- fmt.Errorf("%q is not METHOD:PATH", mp)
						return
					}
					var body io.Reader
					if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
						body = strings.NewReader("kpod")
					}
					req, err := http.NewRequest(method, args[0]+path, body)
					if err != nil {
						errs <- err
						return
					}
					if path == "/big" {
						req.Header.Set("X-Kpod-Big", h2Big)
					}
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					d := time.Since(start)
					if resp.ProtoMajor != 2 {
						errs <- fmt.Errorf("%s %s: answered in %s", method, path, resp.Proto)
						return
					}
					mu.Lock()
					spent[method] += d
					mu.Unlock()
					c.add(method, strconv.Itoa(resp.StatusCode/100)+"xx")
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	c.print()
	for m, d := range spent {
		fmt.Printf("time %s %d\n", m, d.Nanoseconds())
	}
	fmt.Printf("conns %d\n", dials.Load())
	return nil
}

// h2Junk is what the junk client and server send each other after the client's connection
// preface: a frame header no HTTP/2 peer sends (SETTINGS on stream 1) and bytes that are no
// frame.
var h2Junk = append([]byte{0, 0, 0, 4, 0, 0, 0, 0, 1}, "\xff\xfe\x00kpod\x01junk\r\n"...)

// h2JunkServer ADDR: answers each read with h2Junk, until the client closes.
func h2JunkServer(args []string) error {
	if len(args) != 1 {
		return errors.New("h2-junk-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := conn.Read(buf); err != nil {
						return
					}
					if _, err := conn.Write(h2Junk); err != nil {
						return
					}
					c.add("junk", "answered")
				}
			}()
		}
	}()
	serve(&c, func() { _ = ln.Close() })
	return nil
}

// h2JunkClient ADDR K: writes the HTTP/2 connection preface and h2Junk in one write, then
// h2Junk K-1 more times, each after the server's answer: K writes and K reads on each end.
func h2JunkClient(args []string) error {
	if len(args) != 2 {
		return errors.New("h2-junk-client ADDR K")
	}
	k, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	msg := append([]byte(http2.ClientPreface), h2Junk...)
	answer := make([]byte, len(h2Junk))
	for i := 0; i < k; i++ {
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, answer); err != nil {
			return err
		}
		if !bytes.Equal(answer, h2Junk) {
			return fmt.Errorf("answer %q", answer)
		}
		msg = h2Junk
	}
	fmt.Printf("count junk answered %d\n", k)
	return nil
}

// upgradeServer ADDR: answers every request "101 Switching Protocols" to a protocol that is
// not HTTP/2 (Upgrade: kpod-echo), then echoes what the client sends.
func upgradeServer(args []string) error {
	if len(args) != 1 {
		return errors.New("upgrade-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		c.add(r.Method, "1xx")
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: kpod-echo\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		_, _ = io.Copy(conn, rw)
	})}
	go func() { _ = srv.Serve(ln) }()
	serve(&c, func() { _ = srv.Close() })
	return nil
}

// upgradeClient ADDR N: asks for the upgrade to kpod-echo, then sends N lines and reads their
// echoes on the upgraded connection.
func upgradeClient(args []string) error {
	if len(args) != 2 {
		return errors.New("upgrade-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conn, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "GET /up HTTP/1.1\r\nHost: %s\r\nUpgrade: kpod-echo\r\nConnection: Upgrade\r\n\r\n", args[0]); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	for i := 0; i < n; i++ {
		line := fmt.Sprintf("GET / HTTP/1.1 echo %d\n", i) // an HTTP/1.x start, on purpose
		if _, err := conn.Write([]byte(line)); err != nil {
			return err
		}
		got := make([]byte, len(line))
		if _, err := io.ReadFull(br, got); err != nil {
			return err
		}
	}
	fmt.Println("count GET 1xx 1")
	return nil
}
