package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	promconfig "github.com/prometheus/common/config"
)

// storeClient is the store's address and credentials: the flags that serve
// and recommend share, declared once here.
type storeClient struct {
	url                string
	bearerTokenFile    string
	basicAuthUser      string
	basicAuthPassFile  string
	headers            stringList
	caFile             string
	certFile           string
	keyFile            string
	insecureSkipVerify bool
}

func (s *storeClient) flags(fs *flag.FlagSet) {
	fs.StringVar(&s.url, "prometheus-url", "", "base URL of the Prometheus-compatible HTTP API (Prometheus, VictoriaMetrics, Thanos, Mimir), e.g. http://prometheus.monitoring:9090 or http://vmselect:8481/select/0/prometheus")
	fs.StringVar(&s.bearerTokenFile, "bearer-token-file", "", "file holding a bearer token for the store, re-read on every request")
	fs.StringVar(&s.basicAuthUser, "basic-auth-user", "", "basic-auth user for the store")
	fs.StringVar(&s.basicAuthPassFile, "basic-auth-password-file", "", "file holding the basic-auth password")
	fs.Var(&s.headers, "header", "extra HTTP header for the store, 'Name: value' (repeatable), e.g. 'X-Scope-OrgID: team-a' for Mimir or Cortex")
	fs.StringVar(&s.caFile, "ca-file", "", "CA bundle that signs the store's certificate")
	fs.StringVar(&s.certFile, "cert-file", "", "client certificate for the store (mutual TLS)")
	fs.StringVar(&s.keyFile, "key-file", "", "client key for the store (mutual TLS)")
	fs.BoolVar(&s.insecureSkipVerify, "insecure-skip-verify", false, "do not verify the store's certificate (testing only)")
}

// validate checks the URL, when one is set, the credentials' flags, and
// that every file they name can be read: a typo stops ebb at start rather
// than failing every query.
func (s *storeClient) validate() error {
	if s.url != "" {
		u, err := url.Parse(s.url)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			shown := s.url
			if err == nil {
				shown = u.Redacted()
			}
			return fmt.Errorf("--prometheus-url %q: want http(s)://host[:port][/path], such as http://prometheus:9090", shown)
		}
	}
	switch {
	case s.basicAuthPassFile != "" && s.basicAuthUser == "":
		return errors.New("--basic-auth-password-file needs --basic-auth-user")
	case s.bearerTokenFile != "" && s.basicAuthUser != "":
		return errors.New("--bearer-token-file and --basic-auth-user exclude each other")
	case (s.certFile == "") != (s.keyFile == ""):
		return errors.New("--cert-file and --key-file go together")
	}
	for _, f := range []struct{ flag, path string }{
		{"bearer-token-file", s.bearerTokenFile},
		{"basic-auth-password-file", s.basicAuthPassFile},
		{"ca-file", s.caFile},
		{"cert-file", s.certFile},
		{"key-file", s.keyFile},
	} {
		if f.path == "" {
			continue
		}
		file, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("--%s: %w", f.flag, err)
		}
		file.Close()
	}
	_, err := s.httpConfig()
	return err
}

// httpConfig turns the store flags into prometheus/common's client config,
// which handles token files, basic auth, headers and TLS.
func (s *storeClient) httpConfig() (promconfig.HTTPClientConfig, error) {
	hc := promconfig.DefaultHTTPClientConfig
	if s.bearerTokenFile != "" {
		hc.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: s.bearerTokenFile}
	}
	if s.basicAuthUser != "" {
		hc.BasicAuth = &promconfig.BasicAuth{Username: s.basicAuthUser, PasswordFile: s.basicAuthPassFile}
	}
	hc.TLSConfig = promconfig.TLSConfig{CAFile: s.caFile, CertFile: s.certFile, KeyFile: s.keyFile, InsecureSkipVerify: s.insecureSkipVerify}
	if len(s.headers) > 0 {
		hc.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{}}
		for _, h := range s.headers {
			name, value, ok := strings.Cut(h, ":")
			name, value = strings.TrimSpace(name), strings.TrimSpace(value)
			if !ok || name == "" {
				return hc, fmt.Errorf("--header %q: want 'Name: value'", h)
			}
			hdr := hc.HTTPHeaders.Headers[name]
			hdr.Values = append(hdr.Values, value)
			hc.HTTPHeaders.Headers[name] = hdr
		}
	}
	if err := hc.Validate(); err != nil {
		return hc, fmt.Errorf("store client: %w", err)
	}
	return hc, nil
}
