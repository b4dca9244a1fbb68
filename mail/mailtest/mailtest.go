// Package mailtest is for tests only: an SMTP server speaking the protocol
// (github.com/emersion/go-smtp) with STARTTLS or implicit TLS under a
// certificate made for the test, AUTH PLAIN, the replies a test chooses,
// and one that never answers, so that mail is tested against a real
// server, end to end.
package mailtest

import (
	"context"
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
	User     = "mailer"
	Password = "hunter2"
)

// TLS returns a TLS configuration for a server named localhost and
// 127.0.0.1, with a certificate signed by a certificate authority made for
// the test, and the pool holding that authority, for the client to trust.
func TLS(t testing.TB) (server *tls.Config, roots *x509.CertPool) {
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

// Message is one message the test server accepted.
type Message struct {
	From string
	To   []string
	Data []byte
	// TLS and Authed say how the session that carried it was protected.
	TLS, Authed bool
}

// Server is an SMTP server for tests, speaking the protocol through
// github.com/emersion/go-smtp: STARTTLS (or implicit TLS) with TLS's
// certificate, AUTH PLAIN for User only, and the replies its test
// chooses.
type Server struct {
	// Addr is where it listens, 127.0.0.1:port.
	Addr string

	mu       sync.Mutex
	messages []Message
	attempts int // DATA commands (and refused RCPTs) so far
	arrived  chan struct{}
	// refuse, when set, answers the n-th attempt (1 for the first) with
	// an error (a *smtp.SMTPError), or accepts it with nil.
	refuse func(n int) error
	// refuseRcpt, when set, refuses every recipient with it.
	refuseRcpt error
}

// Options choose a test server's protection.
type Options struct {
	// NoTLS offers no STARTTLS; Implicit speaks TLS from the first byte.
	NoTLS, Implicit bool
}

// Start starts a test SMTP server on a loopback port, closed when the
// test ends.
func Start(t testing.TB, tlsConfig *tls.Config, opts Options) *Server {
	t.Helper()
	srv := &Server{arrived: make(chan struct{})}
	s := smtp.NewServer(backend{srv})
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	if !opts.NoTLS {
		s.TLSConfig = tlsConfig
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Implicit {
		l = tls.NewListener(l, tlsConfig)
	}
	srv.Addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return srv
}

// Port returns the port of addr, host:port.
func Port(t testing.TB, addr string) int {
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

// Snapshot returns the messages accepted and the attempts made so far.
func (srv *Server) Snapshot() ([]Message, int) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return append([]Message(nil), srv.messages...), srv.attempts
}

// Refuse makes the server answer the n-th attempt (1 for the first) with
// the error f returns (a *smtp.SMTPError), or accept it when nil; nil
// accepts every one.
func (srv *Server) Refuse(f func(n int) error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.refuse = f
}

// RefuseRecipients makes the server refuse every recipient with err (nil:
// accept them again).
func (srv *Server) RefuseRecipients(err error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.refuseRcpt = err
}

// Wait waits until the server has accepted n messages, and returns them,
// or ctx's error.
func (srv *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		srv.mu.Lock()
		if len(srv.messages) >= n {
			out := append([]Message(nil), srv.messages...)
			srv.mu.Unlock()
			return out, nil
		}
		arrived := srv.arrived
		srv.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// backend makes a session per connection.
type backend struct{ srv *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: b.srv, conn: c}, nil
}

// session is one connection's state.
type session struct {
	srv    *Server
	conn   *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != User || password != Password {
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
	s.srv.messages = append(s.srv.messages, Message{From: s.from, To: s.to, Data: data, TLS: isTLS, Authed: s.authed})
	close(s.srv.arrived)
	s.srv.arrived = make(chan struct{})
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// SilentServer accepts connections and never says a word, like a server
// behind a firewall that drops its replies. It counts the connections.
type SilentServer struct {
	// Addr is where it listens.
	Addr string
	mu   sync.Mutex
	n    int
}

// StartSilent starts a SilentServer, closed when the test ends.
func StartSilent(t testing.TB) *SilentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &SilentServer{Addr: l.Addr().String()}
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

// Connections returns how many connections the server has accepted.
func (srv *SilentServer) Connections() int {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.n
}
