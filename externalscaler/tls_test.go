package externalscaler

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ebbscale/ebb/queries/queriestest"
	"github.com/ebbscale/ebb/scaler"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ebb test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "EC PRIVATE KEY", kder)
	}
	p := testPKI{caFile: write("ca.crt", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// serveTLS serves the external scaler with cfg on a loopback port until the
// test ends, and returns its address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	c, err := scaler.NewCollector(scaler.Config{Source: &queriestest.FakeSource{}})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGRPCServer(NewServer(c, Config{}), c.Ready(), GRPCConfig{TLS: cfg})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return lis.Addr().String()
}

// callTLS makes one call over a new TLS connection that trusts roots and
// presents certs.
func callTLS(t *testing.T, addr string, roots *x509.CertPool, certs []tls.Certificate) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pb.NewExternalScalerClient(conn).GetMetricSpec(ctx(t), ref("cart", map[string]string{"signal": "requests", "target": "1"}))
	return err
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg, err := TLSFiles{Cert: pki.serverCert, Key: pki.serverKey, ClientCA: pki.caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	call := func(clientCerts []tls.Certificate) error { return callTLS(t, addr, pki.pool, clientCerts) }
	clientPair, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := call([]tls.Certificate{clientPair}); err != nil {
		t.Errorf("with a client certificate: %v", err)
	}
	if err := call(nil); err == nil {
		t.Error("without a client certificate the call succeeded; mutual TLS must refuse it")
	}
}

func TestTLSFilesErrors(t *testing.T) {
	pki := newTestPKI(t)
	bogus := filepath.Join(t.TempDir(), "bogus.pem")
	os.WriteFile(bogus, []byte("not a certificate"), 0o600)
	tests := []struct {
		files TLSFiles
		want  string
	}{
		{TLSFiles{Cert: pki.serverCert}, "tls: --tls-cert and --tls-key go together"},
		{TLSFiles{ClientCA: pki.caFile}, "tls: --tls-cert and --tls-key go together"},
		{TLSFiles{Cert: pki.serverCert, Key: pki.clientKey}, "tls: tls: private key does not match public key"},
		{TLSFiles{Cert: pki.serverCert, Key: pki.serverKey, ClientCA: bogus}, "tls: client CA " + bogus + ": no PEM certificate found"},
	}
	for _, tt := range tests {
		_, err := tt.files.Config()
		if err == nil || err.Error() != tt.want {
			t.Errorf("%+v: got %v, want %q", tt.files, err, tt.want)
		}
	}
}

// TestMutualTLSReloadsClientCA rotates the client CA file under a running
// server: a client of the new CA is let in without a restart, and a file
// that does not load (a rotation half done) keeps the last good CA.
func TestMutualTLSReloadsClientCA(t *testing.T) {
	old, next := newTestPKI(t), newTestPKI(t)
	caFile := filepath.Join(t.TempDir(), "client-ca.crt")
	copyFile := func(dst string, srcs ...string) {
		t.Helper()
		var all []byte
		for _, src := range srcs {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		if err := os.WriteFile(dst, all, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(caFile, old.caFile)
	cfg, err := TLSFiles{Cert: old.serverCert, Key: old.serverKey, ClientCA: caFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	call := func(p testPKI) error {
		pair, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		return callTLS(t, addr, old.pool, []tls.Certificate{pair})
	}
	if err := call(old); err != nil {
		t.Fatalf("client of the first CA: %v", err)
	}
	if err := call(next); err == nil {
		t.Fatal("a client of a CA not yet trusted got in")
	}
	copyFile(caFile, old.caFile, next.caFile) // the rotation: both CAs for a while
	if err := call(next); err != nil {
		t.Errorf("client of the new CA after the rotation: %v", err)
	}
	os.WriteFile(caFile, []byte("-----BEGIN CERT"), 0o600) // written half
	if err := call(next); err != nil {
		t.Errorf("while the CA file does not load, the last good CA must stay: %v", err)
	}
	copyFile(caFile, next.caFile) // the old CA retired
	if err := call(old); err == nil {
		t.Error("a client of the retired CA still got in")
	}
}
