package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpod-project/kpod/internal/l7/names"
)

func init() {
	commands["kafka-server"] = kafkaServer
	commands["kafka-client"] = kafkaClient
	commands["kafka-garbage"] = kafkaGarbage
}

// kafkaAPI is kpod's name of an API key.
func kafkaAPI(key int16) string {
	return names.MethodName(names.ProtoKafka, uint16(key)+1)
}

// kafkaTally is what a process's Kafka connections carried, decoded by franz-go's kmsg from
// the bytes the process wrote and read: requests by API, and responses by API and status
// (error if the response has a non-zero top-level error code).
type kafkaTally struct {
	requests, responses counts
	bad                 counts // responses that did not decode
}

func (t *kafkaTally) print(prefix string) {
	t.responses.print()
	t.requests.printAs(prefix + "requests")
	t.bad.printAs("undecoded")
}

// kafkaConn tees a connection's messages into its tally. client: requests are written and
// responses read (else the other way round).
type kafkaConn struct {
	net.Conn
	t      *kafkaTally
	client bool

	mu      sync.Mutex
	in, out []byte
	reqs    map[int32][2]int16 // correlation id -> API key, version
}

func newKafkaConn(c net.Conn, t *kafkaTally, client bool) *kafkaConn {
	return &kafkaConn{Conn: c, t: t, client: client, reqs: map[int32][2]int16{}}
}

// Write takes the messages in p before they go (a client's response could else come back
// before its request is known).
func (c *kafkaConn) Write(p []byte) (int, error) {
	c.feed(&c.out, p, c.client)
	return c.Conn.Write(p)
}

func (c *kafkaConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.feed(&c.in, p[:n], !c.client)
	return n, err
}

// feed appends data to a direction's bytes and takes the whole messages from them.
func (c *kafkaConn) feed(buf *[]byte, data []byte, requests bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*buf = append(*buf, data...)
	for len(*buf) >= 4 {
		size := int(binary.BigEndian.Uint32(*buf))
		if len(*buf) < 4+size {
			return
		}
		msg := (*buf)[4 : 4+size]
		if requests {
			c.request(msg)
		} else {
			c.response(msg)
		}
		*buf = (*buf)[4+size:]
	}
}

func (c *kafkaConn) request(msg []byte) {
	if len(msg) < 8 {
		c.t.bad.add("request", "short")
		return
	}
	key, ver := int16(binary.BigEndian.Uint16(msg)), int16(binary.BigEndian.Uint16(msg[2:]))
	c.reqs[int32(binary.BigEndian.Uint32(msg[4:]))] = [2]int16{key, ver}
	c.t.requests.add(kafkaAPI(key), "")
}

func (c *kafkaConn) response(msg []byte) {
	if len(msg) < 4 {
		c.t.bad.add("response", "short")
		return
	}
	corr := int32(binary.BigEndian.Uint32(msg))
	kv, ok := c.reqs[corr]
	if !ok {
		c.t.bad.add("response", "unrequested")
		return
	}
	delete(c.reqs, corr)
	key, ver := kv[0], kv[1]
	resp := kmsg.ResponseForKey(key)
	if resp == nil {
		c.t.bad.add(kafkaAPI(key), "unknown")
		return
	}
	resp.SetVersion(ver)
	body := msg[4:]
	if resp.IsFlexible() && key != 18 { // ApiVersions' response header has no tags
		r := kbin.Reader{Src: body}
		kmsg.SkipTags(&r)
		body = r.Src
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.bad.add(kafkaAPI(key), "undecodable")
		return
	}
	status := "ok"
	if ec := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); ec.IsValid() && ec.Int() != 0 {
		status = "error"
	}
	c.t.responses.add(kafkaAPI(key), status)
}

// kafkaServer ADDR: a kfake cluster of one broker listening on ADDR. On SIGTERM it prints
// what its connections carried ("count" lines: responses, "requests" lines) and the requests
// kfake itself handled, by API ("handled" lines).
func kafkaServer(args []string) error {
	if len(args) != 1 {
		return errors.New("kafka-server ADDR")
	}
	host, port, err := net.SplitHostPort(args[0])
	if err != nil {
		return err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	var t kafkaTally
	var handled counts
	listen := func(network, _ string) (net.Listener, error) {
		ln, err := net.Listen(network, net.JoinHostPort(host, port))
		if err != nil {
			return nil, err
		}
		return &kafkaListener{Listener: ln, t: &t}, nil
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(p), kfake.ListenFn(listen),
		kfake.DefaultNumPartitions(3), kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		return err
	}
	var produces int
	c.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		handled.add(kafkaAPI(req.Key()), "")
		// The first Produce requests are answered late, so that the producer has written the
		// next ones meanwhile: pipelined requests whatever the machine's speed (a fast answer
		// left one request in flight at a time in a CI run).
		if req.Key() == int16(kmsg.Produce) {
			if produces++; produces <= 2 {
				time.Sleep(50 * time.Millisecond)
			}
		}
		return nil, nil, false
	})
	serve(&t.responses, c.Close)
	t.requests.printAs("requests")
	t.bad.printAs("undecoded")
	handled.printAs("handled")
	return nil
}

type kafkaListener struct {
	net.Listener
	t *kafkaTally
}

func (l *kafkaListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newKafkaConn(c, l.t, false), nil
}

// kafkaHooks counts the requests kgo wrote and the responses it read, by API.
type kafkaHooks struct {
	writes, reads counts
	mu            sync.Mutex
	inflight      map[int16]int
	most          map[int16]int // the most requests in flight at once
}

func (h *kafkaHooks) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		h.writes.add(kafkaAPI(key), "")
		h.mu.Lock()
		h.inflight[key]++
		h.most[key] = max(h.most[key], h.inflight[key])
		h.mu.Unlock()
	}
}

func (h *kafkaHooks) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err == nil {
		h.reads.add(kafkaAPI(key), "")
		h.mu.Lock()
		h.inflight[key]--
		h.mu.Unlock()
	}
}

// waitAnswered waits until every request kgo wrote with a response to come (acks=0 Produce
// requests have none: their key is skipped) has its response read.
func (h *kafkaHooks) waitAnswered(skip int16) error {
	for i := 0; i < 200; i++ {
		h.mu.Lock()
		pending := 0
		for k, n := range h.inflight {
			if k != skip {
				pending += n
			}
		}
		h.mu.Unlock()
		if pending == 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("kafka requests still unanswered")
}

// kafkaClient ADDR N: on the broker at ADDR, creates topic "kpod" (3 partitions), produces N
// records with an idempotent producer (batches of at most 16 kB, up to 5 Produce requests in
// flight: pipelined), every tenth 10 kB large, then N records with acks=0 (Produce requests without responses),
// consumes the 2N records, and sends requests that fail: a JoinGroup with a session timeout
// the broker refuses, a Heartbeat and a SyncGroup of a member that does not exist; and a
// ListGroups. It prints what its connections carried ("count" lines: responses by API and
// status; "requests" lines) and kgo's own count of the requests it wrote and the responses it
// read ("hook-write" and "hook-read" lines), and the most Produce requests it had in flight
// at once ("inflight Produce <n>").
func kafkaClient(args []string) error {
	if len(args) != 2 {
		return errors.New("kafka-client ADDR N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	var t kafkaTally
	hooks := &kafkaHooks{inflight: map[int16]int{}, most: map[int16]int{}}
	dial := func(ctx context.Context, network, host string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, host)
		if err != nil {
			return nil, err
		}
		return newKafkaConn(c, &t, true), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic = "kpod"
	opts := []kgo.Opt{kgo.SeedBrokers(args[0]), kgo.Dialer(dial), kgo.WithHooks(hooks),
		kgo.MetadataMinAge(time.Minute), kgo.MetadataMaxAge(time.Hour)}

	// Topic and the idempotent producer.
	prod, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	create := kmsg.NewPtrCreateTopicsRequest()
	ct := kmsg.NewCreateTopicsRequestTopic()
	ct.Topic, ct.NumPartitions, ct.ReplicationFactor = topic, 3, 1
	create.Topics = append(create.Topics, ct)
	if _, err := create.RequestWith(ctx, prod); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	big := strings.Repeat("k", 10000)
	produce := func(cl *kgo.Client, n int) error {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failed error
		for i := 0; i < n; i++ {
			v := "record " + strconv.Itoa(i)
			if i%10 == 0 {
				v += big
			}
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Partition: int32(i % 3), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
				wg.Done()
			})
		}
		wg.Wait()
		return failed
	}
	if err := produce(prod, n); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := hooks.waitAnswered(-1); err != nil {
		return err
	}
	prod.Close()
	hooks.mu.Lock()
	pipelined := hooks.most[0]
	hooks.mu.Unlock()

	// acks=0.
	noack, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.NoAck()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	if err := produce(noack, n); err != nil {
		return fmt.Errorf("produce acks=0: %w", err)
	}
	if err := hooks.waitAnswered(0); err != nil {
		return err
	}
	noack.Close()

	// Consumer: reads all, then stops fetching and waits for its last Fetch's response.
	cons, err := kgo.NewClient(append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		return err
	}
	for got := 0; got < 2*n; {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("consume: %w", err)
		}
		got += fs.NumRecords()
	}
	cons.PauseFetchTopics(topic)
	if err := hooks.waitAnswered(0); err != nil {
		return err
	}

	// Requests that fail, and one that does not, on the consumer's connections.
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = "kpod-group", 1, 1000, "consumer"
	join.Protocols = append(join.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range"})
	jr, err := join.RequestWith(ctx, cons)
	if err != nil || jr.ErrorCode == 0 {
		return fmt.Errorf("join group: %v, error code %d, want a refused session timeout", err, errCode(jr))
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "kpod-group", "nobody", 1
	if r, err := hb.RequestWith(ctx, cons); err != nil || r.ErrorCode == 0 {
		return fmt.Errorf("heartbeat: %v, want an error code", err)
	}
	sg := kmsg.NewPtrSyncGroupRequest()
	sg.Group, sg.MemberID, sg.Generation = "kpod-group", "nobody", 1
	if r, err := sg.RequestWith(ctx, cons); err != nil || r.ErrorCode == 0 {
		return fmt.Errorf("sync group: %v, want an error code", err)
	}
	if r, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, cons); err != nil || r.ErrorCode != 0 {
		return fmt.Errorf("list groups: %v", err)
	}
	if err := hooks.waitAnswered(0); err != nil {
		return err
	}
	cons.Close()

	t.print("")
	hooks.writes.printAs("hook-write")
	hooks.reads.printAs("hook-read")
	fmt.Printf("inflight Produce %d\n", pipelined)
	return nil
}

func errCode(r *kmsg.JoinGroupResponse) int16 {
	if r == nil {
		return 0
	}
	return r.ErrorCode
}

// printAs prints a count of names alone (status "") as "<word> <name> <n>".
func (c *counts) printAs(word string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var keys [][2]string
	for k := range c.m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+" "+keys[i][1] < keys[j][0]+" "+keys[j][1] })
	for _, k := range keys {
		if k[1] == "" {
			fmt.Printf("%s %s %d\n", word, k[0], c.m[k])
		} else {
			fmt.Printf("%s %s %s %d\n", word, k[0], k[1], c.m[k])
		}
	}
}

// kafkaGarbage ADDR: on one connection to the broker at ADDR, an ApiVersions request (v0)
// and its response, then 13 bytes that are no Kafka request (a size of 9, shorter than any
// request header, then a header cut short), each in one write; the broker closes the
// connection. Then an ApiVersions request on a second connection. Prints "count ApiVersions
// ok|error <n>" (the responses' error codes) and "closed 1" if the broker closed the first
// connection without sending anything after the garbage.
func kafkaGarbage(args []string) error {
	if len(args) != 1 {
		return errors.New("kafka-garbage ADDR")
	}
	var cs counts
	apiVersions := func(c net.Conn, corr int32) error {
		req := binary.BigEndian.AppendUint32(nil, 14)
		req = binary.BigEndian.AppendUint16(req, 18) // ApiVersions
		req = binary.BigEndian.AppendUint16(req, 0)  // v0
		req = binary.BigEndian.AppendUint32(req, uint32(corr))
		req = binary.BigEndian.AppendUint16(req, 4)
		req = append(req, "kpod"...)
		if _, err := c.Write(req); err != nil {
			return err
		}
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return err
		}
		resp := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, resp); err != nil {
			return err
		}
		if len(resp) < 6 || int32(binary.BigEndian.Uint32(resp)) != corr {
			return fmt.Errorf("ApiVersions: a response %x that does not answer correlation id %d", resp, corr)
		}
		st := "ok"
		if binary.BigEndian.Uint16(resp[4:]) != 0 {
			st = "error"
		}
		cs.add("ApiVersions", st)
		return nil
	}
	c, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := apiVersions(c, 1); err != nil {
		return err
	}
	if _, err := c.Write([]byte{0, 0, 0, 9, 0, 18, 0, 3, 0, 0, 0, 7, 0xff}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := c.Read(make([]byte, 64)); n == 0 && errors.Is(err, io.EOF) {
		fmt.Println("closed 1")
	} else {
		fmt.Printf("after the garbage: %d bytes, %v\n", n, err)
	}
	c2, err := net.DialTimeout("tcp", args[0], 10*time.Second)
	if err != nil {
		return err
	}
	defer c2.Close()
	if err := apiVersions(c2, 2); err != nil {
		return err
	}
	cs.print()
	return nil
}
