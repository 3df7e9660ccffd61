package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal of cols columns: ebb writes to tty, the
// test reads what a terminal would show from master.
func openPTY(t *testing.T, cols uint16) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("SKIPPED: no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return master, tty
}

// TestDemoOnATerminal runs the demo on terminals of 80 and 100 columns: it
// redraws the table in place under its header, and every line fits.
func TestDemoOnATerminal(t *testing.T) {
	for _, cols := range []int{80, 100} {
		t.Run(strconv.Itoa(cols), func(t *testing.T) {
			master, tty := openPTY(t, uint16(cols))
			read := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(master) // ends with EIO once tty is closed
				read <- b
			}()
			var stderr bytes.Buffer
			code := runMain(context.Background(), []string{"demo", "--speed=0", "--duration=30m"}, tty, &stderr, nil)
			tty.Close()
			out := strings.ReplaceAll(string(<-read), "\r\n", "\n") // the terminal's ONLCR
			if code != 0 || stderr.Len() > 0 {
				t.Fatalf("exit %d, stderr %q; want 0 and nothing", code, &stderr)
			}
			const redraw = "\033[H\033[2J"
			if n := strings.Count(out, redraw+"ebb demo: 11 simulated workloads; ebb's gRPC server on 127.0.0.1:"); n != 120 {
				t.Errorf("%d redraws starting with the header, want 120 (30m every 15s)", n)
			}
			for line := range strings.Lines(strings.ReplaceAll(out, redraw, "")) {
				if len(strings.TrimSuffix(line, "\n")) > cols {
					t.Errorf("line of %d columns on a terminal of %d: %q", len(line)-1, cols, line)
				}
			}
			note := map[int]string{80: "never active", 100: "never active: idle at once"}[cols]
			if want := "\nnotebooks/bob-notebook   requests     0.00      1    0/1    false  " + note + "\n"; !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		})
	}
}
