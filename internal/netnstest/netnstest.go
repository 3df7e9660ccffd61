//go:build linux

// Package netnstest gives a test a network namespace of its own, joined to
// the host by a veth pair, so that servers the test starts inside it have
// addresses outside loopback (the API server refuses loopback addresses in
// EndpointSlices) that only the test reaches.
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// prefix starts the name of every namespace this package creates:
// ebbtest-<pid>-<hex>, so that a later run can remove the leftovers of a
// run that crashed.
const prefix = "ebbtest-"

// runDir is where `ip netns` keeps the namespaces' handles.
const runDir = "/run/netns"

// NS is a network namespace with one end of a veth pair inside it.
type NS struct {
	// Name is the namespace's name for `ip netns`.
	Name string
	// HostIP is the host's end of the veth pair; PeerIP is the end inside
	// the namespace. They share a /30 in 10.250.0.0/16 picked at random.
	HostIP, PeerIP netip.Addr
	// HostLink and PeerLink are the veth interfaces' names.
	HostLink, PeerLink string
}

// New creates a namespace and its veth pair, removed when the test ends,
// and returns once a connection from the host reaches a listener inside.
// Without the capability to create one (not root, no `ip`) it skips the
// test with the reason, or fails it under CI=true.
func New(tb testing.TB) *NS {
	tb.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		unable(tb, fmt.Errorf("no ip command (iproute2): %w", err))
	}
	removeLeftovers()
	id := make([]byte, 3)
	rand.Read(id)
	hexID := hex.EncodeToString(id)
	n := &NS{
		Name:     fmt.Sprintf("%s%d-%s", prefix, os.Getpid(), hexID),
		HostLink: "ebb" + hexID + "h",
		PeerLink: "ebb" + hexID + "p",
	}
	// A random /30 of 10.250.0.0/16: .1 is the host's, .2 the namespace's.
	k, _ := rand.Int(rand.Reader, big.NewInt(1<<14))
	base := uint32(10)<<24 | uint32(250)<<16 | uint32(k.Int64())<<2
	n.HostIP = addr4(base + 1)
	n.PeerIP = addr4(base + 2)

	if err := ip("netns", "add", n.Name); err != nil {
		unable(tb, err)
	}
	tb.Cleanup(func() { n.remove(tb) })
	steps := [][]string{
		{"link", "add", n.HostLink, "type", "veth", "peer", "name", n.PeerLink, "netns", n.Name},
		{"addr", "add", n.HostIP.String() + "/30", "dev", n.HostLink},
		{"link", "set", n.HostLink, "up"},
		{"-n", n.Name, "addr", "add", n.PeerIP.String() + "/30", "dev", n.PeerLink},
		{"-n", n.Name, "link", "set", n.PeerLink, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			tb.Fatalf("netnstest: %v", err)
		}
	}
	if err := n.probe(); err != nil {
		tb.Fatalf("netnstest: %s: %v", n, err)
	}
	return n
}

// String names the namespace and its addresses.
func (n *NS) String() string {
	return fmt.Sprintf("netns %s (host %s on %s, inside %s on %s)", n.Name, n.HostIP, n.HostLink, n.PeerIP, n.PeerLink)
}

// Listen listens on addr ("host:port") inside the namespace: a socket
// made there stays there, whichever thread later accepts on it.
//
// The thread that makes the socket joins the namespace and then goes back
// to the host's before the scheduler may use it again. It must not simply
// exit: a child process started with Pdeathsig (the control-plane
// harness's servers) is killed when the thread that forked it exits, and
// that may have been this thread.
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	type result struct {
		l   net.Listener
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		host, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: err}
			return
		}
		defer host.Close()
		target, err := os.Open(filepath.Join(runDir, n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("setns %s: %w", n.Name, err)}
			return
		}
		l, err := net.Listen(network, addr)
		if err := unix.Setns(int(host.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stuck in the namespace: the thread stays locked and exits
			// with this goroutine, the lesser harm.
			if l != nil {
				l.Close()
			}
			c <- result{err: fmt.Errorf("setns back to the host's namespace: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		c <- result{l, err}
	}()
	r := <-c
	return r.l, r.err
}

// probe waits until a connection from the host reaches a listener inside
// the namespace (the veth's links come up asynchronously).
func (n *NS) probe() error {
	l, err := n.Listen("tcp", net.JoinHostPort(n.PeerIP.String(), "0"))
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the host does not reach %s: %w", l.Addr(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remove deletes the namespace, which destroys the veth pair with it.
func (n *NS) remove(tb testing.TB) {
	if err := ip("netns", "del", n.Name); err != nil {
		tb.Errorf("netnstest: %v", err)
	}
	// Normally gone with its peer; a failure here means it was.
	_ = ip("link", "del", n.HostLink)
}

// removeLeftovers deletes the namespaces of earlier runs whose process is
// gone. A pid reused since is left alone: its namespace only costs a name.
func removeLeftovers() {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = ip("netns", "del", e.Name())
		}
	}
}

// unable ends a test that cannot create a namespace.
func unable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("netnstest: cannot create a network namespace (tests run as root under CI=true): %v", err)
	}
	fmt.Fprintf(os.Stderr, "\n*** netnstest: SKIPPING %s: cannot create a network namespace: %v\n*** under CI=true this test fails.\n\n", tb.Name(), err)
	tb.Skipf("SKIPPED, needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for a network namespace: %v", err)
}

func ip(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
