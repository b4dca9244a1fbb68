package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The test SMTP server's account.
const (
	testUser     = "mailer"
	testPassword = "hunter2"
)

// testTLS returns a TLS configuration for a server named localhost and
// 127.0.0.1, with a certificate signed by a certificate authority made for
// the test, and the pool holding that authority, for the client to trust.
func testTLS(t *testing.T) (server *tls.Config, roots *x509.CertPool) {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	caKey, leafKey := newKey(), newKey()
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "obsqra test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(caCert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}, roots
}

// received is one message the test server accepted.
type received struct {
	from string
	to   []string
	data []byte
	// tls and authed say how the session that carried it was protected.
	tls, authed bool
}

// smtpServer is an SMTP server for tests, speaking the protocol through
// github.com/emersion/go-smtp: STARTTLS (or implicit TLS) with testTLS's
// certificate, AUTH PLAIN for testUser only, and the replies its test
// chooses.
type smtpServer struct {
	addr string

	mu       sync.Mutex
	messages []received
	attempts int // DATA commands (and refused RCPTs) so far
	// refuse, when set, answers the n-th attempt (1 for the first) with
	// an error (a *smtp.SMTPError), or accepts it with nil.
	refuse func(n int) error
	// refuseRcpt, when set, refuses every recipient with it.
	refuseRcpt error
}

// serverOptions choose a test server's protection.
type serverOptions struct {
	// noTLS offers no STARTTLS; implicit speaks TLS from the first byte.
	noTLS, implicit bool
}

// startSMTP starts a test SMTP server on a loopback port, closed when the
// test ends.
func startSMTP(t *testing.T, tlsConfig *tls.Config, opts serverOptions) *smtpServer {
	t.Helper()
	srv := &smtpServer{}
	s := smtp.NewServer(backend{srv})
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	if !opts.noTLS {
		s.TLSConfig = tlsConfig
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.implicit {
		l = tls.NewListener(l, tlsConfig)
	}
	srv.addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return srv
}

// portOf returns the port of addr, host:port.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// snapshot returns the messages accepted and the attempts made so far.
func (srv *smtpServer) snapshot() ([]received, int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]received(nil), srv.messages...), srv.attempts
}

// backend makes a session per connection.
type backend struct{ srv *smtpServer }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: b.srv, conn: c}, nil
}

// session is one connection's state.
type session struct {
	srv    *smtpServer
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != testUser || password != testPassword {
			return errors.New("invalid credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	if s.srv.refuseRcpt != nil {
		s.srv.attempts++
		return s.srv.refuseRcpt
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.attempts++
	if s.srv.refuse != nil {
		if err := s.srv.refuse(s.srv.attempts); err != nil {
			return err
		}
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.messages = append(s.srv.messages, received{from: s.from, to: s.to, data: data, tls: isTLS, authed: s.authed})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// silentServer accepts connections and never says a word, like a server
// behind a firewall that drops its replies. It counts the connections.
type silentServer struct {
	addr string
	mu   sync.Mutex
	n    int
}

// startSilent starts a silentServer, closed when the test ends.
func startSilent(t *testing.T) *silentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &silentServer{addr: l.Addr().String()}
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			srv.mu.Lock()
			srv.n++
			conns = append(conns, c)
			srv.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return srv
}

// connections returns how many connections the server has accepted.
func (srv *silentServer) connections() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.n
}
