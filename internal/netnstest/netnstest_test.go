//go:build linux

package netnstest

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestNamespace checks that a listener made by Listen is inside the
// namespace (its address is not the host's) and reached from the host
// through the veth pair, and that the namespace goes with the test.
func TestNamespace(t *testing.T) {
	var name string
	t.Run("inside", func(t *testing.T) {
		n := New(t)
		name = n.Name
		addr := net.JoinHostPort(n.PeerIP.String(), "0")
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			t.Fatalf("the host listens on %s, the namespace's address", addr)
		}
		l, err := n.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("inside"))
			c.Close()
		}()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatalf("dial %s from the host: %v", l.Addr(), err)
		}
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "inside" {
			t.Errorf("read %q, want %q", b, "inside")
		}
		if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != n.HostIP.String() {
			t.Errorf("the host's end of the connection is %s, want %s", got, n.HostIP)
		}
	})
	if name == "" {
		return // skipped
	}
	if _, err := os.Stat(filepath.Join(runDir, name)); !os.IsNotExist(err) {
		t.Errorf("namespace %s after the test: %v, want it gone", name, err)
	}
}

// TestListenKeepsThreads checks that Listen gives its thread back instead
// of letting it exit: the kernel kills a child started with Pdeathsig (the
// control plane's servers) when the thread that forked it exits, and
// before this test a Listen killed the API server of a test now and then.
// Go never ends a thread but one whose goroutine exits locked to it, so
// every thread that was there before the Listens must still be there.
func TestListenKeepsThreads(t *testing.T) {
	n := New(t)
	before := threads(t)
	for range 20 {
		l, err := n.Listen("tcp", net.JoinHostPort(n.PeerIP.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	after := threads(t)
	for _, tid := range before {
		if !slices.Contains(after, tid) {
			t.Errorf("thread %s exited during the Listens", tid)
		}
	}
	// And no thread stayed in the namespace: the host cannot listen on
	// the namespace's address from any of them.
	for range 20 {
		if l, err := net.Listen("tcp", net.JoinHostPort(n.PeerIP.String(), "0")); err == nil {
			l.Close()
			t.Fatal("a host goroutine listened on the namespace's address: its thread was left in the namespace")
		}
	}
}

// threads returns the ids of the process's threads.
func threads(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range es {
		ids = append(ids, e.Name())
	}
	return ids
}
