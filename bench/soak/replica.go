package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ebbscale/ebb/bench"
)

// replica is one `ebb serve` process on fixed loopback ports, and KEDA's
// connection to it.
type replica struct {
	id       int
	bin      string
	args     []string
	grpcAddr string
	httpAddr string
	log      *os.File
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	client   pb.ExternalScalerClient
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func newReplica(id int, bin, storeURL, logPath string, extra []string) (*replica, error) {
	r := &replica{id: id, bin: bin}
	var err error
	if r.grpcAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if r.httpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if r.log, err = os.Create(logPath); err != nil {
		return nil, err
	}
	r.args = append([]string{"serve", "--prometheus-url=" + storeURL, "--grpc-addr=" + r.grpcAddr, "--http-addr=" + r.httpAddr}, extra...)
	// One connection, as KEDA keeps one per scalerAddress; it reconnects
	// by itself when the replica comes back.
	r.conn, err = grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	r.client = pb.NewExternalScalerClient(r.conn)
	return r, nil
}

// start runs the process and returns when /readyz answers 200, with the
// time that took.
func (r *replica) start() (time.Duration, error) {
	t0 := time.Now()
	r.cmd = exec.Command(r.bin, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if err := r.cmd.Start(); err != nil {
		return 0, err
	}
	go r.cmd.Wait()
	for time.Since(t0) < 60*time.Second {
		if code, _ := r.get("/readyz"); code == http.StatusOK {
			return time.Since(t0), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("replica %d not ready after 60s", r.id)
}

// kill sends SIGKILL, as the kernel's OOM killer or a node loss would.
func (r *replica) kill() { _ = r.cmd.Process.Signal(syscall.SIGKILL) }

func (r *replica) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
	}
	r.conn.Close()
	r.log.Close()
}

func (r *replica) get(path string) (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + r.httpAddr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample is one reading of a replica's process and /metrics.
type sample struct {
	rss        float64 // MiB
	goroutines float64
	dataAge    float64 // the oldest ebb_data_age_seconds, seconds
	recovered  float64 // ebb_idle_clock_recoveries_total{result="ok"}
	tracked    float64 // ebb_workloads_tracked
	series     int     // series on /metrics
	tickSum    float64 // ebb_collector_tick_duration_seconds_sum
	tickCount  float64
	queries    float64 // ebb_queries_total, every signal
	decoded    float64 // ebb_series_decoded_total, every signal
}

func (r *replica) sample() (sample, error) {
	var s sample
	if r.cmd == nil || r.cmd.Process == nil {
		return s, fmt.Errorf("not running")
	}
	ps, err := bench.ReadProc(r.cmd.Process.Pid)
	if err != nil {
		return s, err
	}
	s.rss = float64(ps.RSS) / (1 << 20)
	code, body := r.get("/metrics")
	if code != http.StatusOK {
		return s, fmt.Errorf("/metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		s.series++
		i := strings.LastIndexByte(line, ' ')
		v, _ := strconv.ParseFloat(line[i+1:], 64)
		switch {
		case strings.HasPrefix(line, "go_goroutines "):
			s.goroutines = v
		case strings.HasPrefix(line, "ebb_data_age_seconds{"):
			s.dataAge = max(s.dataAge, v)
		case strings.HasPrefix(line, `ebb_idle_clock_recoveries_total{`) && strings.Contains(line, `result="ok"`):
			s.recovered += v
		case strings.HasPrefix(line, "ebb_collector_tick_duration_seconds_sum "):
			s.tickSum = v
		case strings.HasPrefix(line, "ebb_collector_tick_duration_seconds_count "):
			s.tickCount = v
		case strings.HasPrefix(line, "ebb_queries_total{"):
			s.queries += v
		case strings.HasPrefix(line, "ebb_series_decoded_total{"):
			s.decoded += v
		case strings.HasPrefix(line, "ebb_workloads_tracked "):
			s.tracked = v
		}
	}
	return s, nil
}
