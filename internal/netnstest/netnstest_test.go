//go:build linux

package netnstest

import (
	"io"
	"net"
	"os"
	"path/filepath"
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
