package main

import (
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
}

// h2Routes are the HTTP/2 server's paths and their statuses: static-table ones (200, 404, 500)
// and others that HPACK sends as literals, then as references to the dynamic table (201, 503).
var h2Routes = map[string]int{
	"/ok": http.StatusOK, "/created": http.StatusCreated, "/missing": http.StatusNotFound,
	"/fail": http.StatusInternalServerError, "/unavailable": http.StatusServiceUnavailable,
	"/slow": http.StatusOK,
}

// h2Server ADDR: an HTTP/2 server in clear text (golang.org/x/net/http2 behind h2c: prior
// knowledge and the HTTP/1.1 upgrade) answering h2Routes; /slow answers after 50 ms. It counts
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
		if r.URL.Path == "/slow" {
			time.Sleep(50 * time.Millisecond)
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
// a plain TCP connection), concurrently. Prints the counts by method and status class, per
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
