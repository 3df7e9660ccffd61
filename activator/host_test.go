package activator

import (
	"errors"
	"strconv"
	"testing"
)

func TestParseHost(t *testing.T) {
	ok := func(host, defNS, domain string, want Target) {
		t.Helper()
		got, err := ParseHost(host, defNS, domain)
		if err != nil {
			t.Errorf("ParseHost(%q, %q, %q): %v", host, defNS, domain, err)
			return
		}
		if got != want {
			t.Errorf("ParseHost(%q, %q, %q) = %+v, want %+v", host, defNS, domain, got, want)
		}
	}
	web := func(port int32) Target { return Target{Namespace: "shop", Service: "web", Port: port} }
	ok("web.shop", "", "", web(0))
	ok("web.shop:8080", "", "", web(8080))
	ok("web.shop.svc", "", "", web(0))
	ok("web.shop.svc:80", "", "", web(80))
	ok("web.shop.svc.cluster.local", "", "", web(0))
	ok("web.shop.svc.cluster.local:65535", "", "", web(65535))
	ok("web.shop.svc.cluster.local.", "", "", web(0))
	ok("web.shop.svc.cluster.local.:9000", "", "", web(9000))
	ok("WEB.Shop.SVC.Cluster.Local", "", "", web(0))
	ok("web.shop.svc.corp.example", "", "corp.example", web(0))
	ok("web.shop.svc.CORP.example", "", "corp.Example", web(0))
	ok("web", "shop", "", web(0))
	ok("web:8080", "shop", "", web(8080))
	ok("web.shop", "other", "", web(0))
	ok("a-1.b-2", "", "", Target{Namespace: "b-2", Service: "a-1"})
	ok("0web.9shop", "", "", Target{Namespace: "9shop", Service: "0web"})
}

func TestParseHostErrors(t *testing.T) {
	bad := func(host, defNS, domain string, want error, msg string) {
		t.Helper()
		got, err := ParseHost(host, defNS, domain)
		if err == nil {
			t.Errorf("ParseHost(%q) = %+v, want error %q", host, got, msg)
			return
		}
		var he *HostError
		if !errors.As(err, &he) || he.Host != host {
			t.Errorf("ParseHost(%q): %#v is not a *HostError for the host", host, err)
		}
		if !errors.Is(err, want) {
			t.Errorf("ParseHost(%q): %v, want %v", host, err, want)
		}
		if err.Error() != msg {
			t.Errorf("ParseHost(%q): got %q, want %q", host, err.Error(), msg)
		}
	}
	bad("", "", "", ErrEmptyHost, `host "": empty host`)
	bad(":80", "", "", ErrEmptyHost, `host ":80": empty host`)
	bad(".", "", "", ErrEmptyHost, `host ".": empty host`)
	bad("web", "", "", ErrNoNamespace, `host "web": no namespace, and no default namespace`)
	bad("web.shop:", "", "", ErrBadPort, `host "web.shop:": bad port: ""`)
	bad("web.shop:0", "", "", ErrBadPort, `host "web.shop:0": bad port: "0"`)
	bad("web.shop:65536", "", "", ErrBadPort, `host "web.shop:65536": bad port: "65536"`)
	bad("web.shop:+80", "", "", ErrBadPort, `host "web.shop:+80": bad port: "+80"`)
	bad("web.shop:http", "", "", ErrBadPort, `host "web.shop:http": bad port: "http"`)
	bad("web.shop:8_0", "", "", ErrBadPort, `host "web.shop:8_0": bad port: "8_0"`)
	bad("127.0.0.1", "", "", ErrIPHost, `host "127.0.0.1": an IP address, not a Service name`)
	bad("127.0.0.1:8080", "", "", ErrIPHost, `host "127.0.0.1:8080": an IP address, not a Service name`)
	bad("[::1]:8080", "", "", ErrIPHost, `host "[::1]:8080": an IP address, not a Service name`)
	bad("[::1]", "", "", ErrIPHost, `host "[::1]": an IP address, not a Service name`)
	bad("::1", "", "", ErrIPHost, `host "::1": an IP address, not a Service name`)
	bad("web..shop", "", "", ErrBadLabel, `host "web..shop": bad DNS label: ""`)
	bad("web.shop..", "", "", ErrBadLabel, `host "web.shop..": bad DNS label: ""`)
	bad("-web.shop", "", "", ErrBadLabel, `host "-web.shop": bad DNS label: "-web"`)
	bad("web-.shop", "", "", ErrBadLabel, `host "web-.shop": bad DNS label: "web-"`)
	bad("web_1.shop", "", "", ErrBadLabel, `host "web_1.shop": bad DNS label: "web_1"`)
	bad("user@web.shop", "", "", ErrBadLabel, `host "user@web.shop": bad DNS label: "user@web"`)
	bad("web.shop/x", "", "", ErrBadLabel, `host "web.shop/x": bad DNS label: "shop/x"`)
	long := "a234567890123456789012345678901234567890123456789012345678901234" // 64
	bad(long+".shop", "", "", ErrBadLabel, `host "`+long+`.shop": bad DNS label: "`+long+`"`)
	bad("web.shop.cluster", "", "", ErrNotAService,
		`host "web.shop.cluster": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`)
	bad("web.shop.svc.cluster", "", "", ErrNotAService,
		`host "web.shop.svc.cluster": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`)
	bad("web.shop.svc.cluster.local.evil", "", "", ErrNotAService,
		`host "web.shop.svc.cluster.local.evil": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`)
	bad("web.shop.svc.cluster.local", "", "corp.example", ErrNotAService,
		`host "web.shop.svc.cluster.local": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.corp.example`)
	bad("www.example.com", "", "", ErrNotAService,
		`host "www.example.com": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`)
	bad("1.2.3", "", "", ErrNotAService,
		`host "1.2.3": not a Service name: want svc, svc.ns, svc.ns.svc or svc.ns.svc.cluster.local`)
}

// FuzzParseHost checks, for any Host header, that ParseHost does not panic,
// fails only with a *HostError wrapping one of its errors, and that what it
// returns is a pair of DNS labels and a port that round-trip.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{
		"web", "web.shop", "web.shop:8080", "web.shop.svc", "web.shop.svc.cluster.local.",
		"WEB.SHOP.SVC.cluster.local:1", "127.0.0.1:80", "[::1]:80", "::1", "", ":", ".",
		"web..shop", "web.shop:99999", "a.b.c.d.e.f", "web.shop.svc.corp.example", "\xff.shop",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		got, err := ParseHost(host, "default", "corp.example")
		if err != nil {
			var he *HostError
			if !errors.As(err, &he) {
				t.Fatalf("ParseHost(%q): %v is not a *HostError", host, err)
			}
			known := false
			for _, e := range []error{ErrEmptyHost, ErrBadPort, ErrIPHost, ErrBadLabel, ErrNoNamespace, ErrNotAService} {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Fatalf("ParseHost(%q): %v wraps none of the known errors", host, err)
			}
			return
		}
		if !isDNSLabel(got.Service) || !isDNSLabel(got.Namespace) {
			t.Fatalf("ParseHost(%q) = %+v: not DNS labels", host, got)
		}
		if got.Port < 0 || got.Port > 65535 {
			t.Fatalf("ParseHost(%q) = %+v: port out of range", host, got)
		}
		again := got.Service + "." + got.Namespace
		if got.Port != 0 {
			again += ":" + strconv.Itoa(int(got.Port))
		}
		if back, err := ParseHost(again, "", ""); err != nil || back != got {
			t.Fatalf("ParseHost(%q) = %+v, but ParseHost(%q) = %+v, %v", host, got, again, back, err)
		}
	})
}
