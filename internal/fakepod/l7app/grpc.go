package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
)

func init() {
	commands["grpc-server"] = grpcServer
	commands["grpc-client"] = grpcClient
	encoding.RegisterCodec(rawCodec{})
}

// rawCodec carries a message's bytes as they are: the echo service needs no generated code.
// Its calls' content-type is application/grpc+kpodraw.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "kpodraw" }

// The echo service's method answers by its request: "ok" with the request, "fail" with
// NOT_FOUND at once (a trailers-only response), "late" with INTERNAL after its response
// headers (grpc-status in the trailers).
const echoMethod = "/kpod.Echo/Call"

type echoServer interface{}

var echoDesc = grpc.ServiceDesc{
	ServiceName: "kpod.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Call",
		Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			if err := dec(&req); err != nil {
				return nil, err
			}
			call := func(ctx context.Context, r any) (any, error) {
				switch string(*r.(*[]byte)) {
				case "ok":
					return r, nil
				case "late":
					if err := grpc.SendHeader(ctx, metadata.Pairs("kpod", "late")); err != nil {
						return nil, err
					}
					return nil, grpcstatus.Error(codes.Internal, "late failure")
				}
				return nil, grpcstatus.Error(codes.NotFound, "no such thing")
			}
			if in == nil {
				return call(ctx, &req)
			}
			return in(ctx, &req, &grpc.UnaryServerInfo{Server: srv, FullMethod: echoMethod}, call)
		},
	}},
}

// grpcServer ADDR: a gRPC server (google.golang.org/grpc, plain TCP) with the standard health
// service (kpod.ok SERVING; an unknown service is NOT_FOUND) and the echo service. It counts
// the calls it answered, as kpod names them: method POST (gRPC's HTTP method), status ok
// (grpc-status 0) or error.
func grpcServer(args []string) error {
	if len(args) != 1 {
		return errors.New("grpc-server ADDR")
	}
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	var c counts
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		c.add("POST", grpcStatus(err))
		return resp, err
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(count))
	hs := health.NewServer()
	hs.SetServingStatus("kpod.ok", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(&echoDesc, struct{}{})
	go func() { _ = srv.Serve(ln) }()
	serve(&c, srv.Stop)
	return nil
}

func grpcStatus(err error) string {
	if grpcstatus.Code(err) == codes.OK {
		return "ok"
	}
	return "error"
}

// grpcClient ADDR N CONC: CONC goroutines each make N rounds of five calls over one
// connection: health Check of kpod.ok (ok) and of kpod.missing (NOT_FOUND), echo "ok", "fail"
// (NOT_FOUND) and "late" (INTERNAL). Prints the counts by outcome (method POST) and
// "conns <n>", the connections it opened.
func grpcClient(args []string) error {
	if len(args) != 3 {
		return errors.New("grpc-client ADDR N CONC")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	conc, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	var dials sync.Mutex
	conns := 0
	cc, err := grpc.NewClient("passthrough:///"+args[0],
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			dials.Lock()
			conns++
			dials.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}))
	if err != nil {
		return err
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	var c counts
	calls := []func(ctx context.Context) (bool, error){
		func(ctx context.Context) (bool, error) {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "kpod.ok"})
			return err == nil, err
		},
		func(ctx context.Context) (bool, error) {
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "kpod.missing"})
			return grpcstatus.Code(err) == codes.NotFound, err
		},
	}
	for _, msg := range []string{"ok", "fail", "late"} {
		want := map[string]codes.Code{"ok": codes.OK, "fail": codes.NotFound, "late": codes.Internal}[msg]
		calls = append(calls, func(ctx context.Context) (bool, error) {
			req, resp := []byte(msg), []byte(nil)
			err := cc.Invoke(ctx, echoMethod, &req, &resp, grpc.CallContentSubtype(rawCodec{}.Name()))
			return grpcstatus.Code(err) == want && (err != nil || string(resp) == msg), err
		})
	}
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				for k, call := range calls {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					expected, err := call(ctx)
					cancel()
					if !expected {
						errs <- fmt.Errorf("call %d: unexpected outcome %v", k, err)
						return
					}
					c.add("POST", grpcStatus(err))
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
	fmt.Printf("conns %d\n", conns)
	return nil
}
