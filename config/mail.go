package config

import (
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
)

// SMTPSecurity is how the connection to the SMTP server is protected.
type SMTPSecurity string

// The SMTP securities, one per scheme of SMTP_URL.
const (
	// SMTPStartTLS upgrades the connection with STARTTLS before anything
	// else is said, and refuses a server that does not offer it
	// (smtp://, port 587 by default).
	SMTPStartTLS SMTPSecurity = "starttls"
	// SMTPImplicitTLS speaks TLS from the first byte (smtps://, port 465
	// by default).
	SMTPImplicitTLS SMTPSecurity = "tls"
	// SMTPPlaintext sends everything, password included, in the clear
	// (smtp+insecure://, port 25 by default): for a local test server
	// only, and refused in production.
	SMTPPlaintext SMTPSecurity = "plaintext"
)

// SMTP is the SMTP server mail is sent through, as SMTP_URL names it.
type SMTP struct {
	// Security is how the connection is protected, from the URL's scheme.
	Security SMTPSecurity
	// Host and Port are where the server listens.
	Host string
	Port int
	// Username and Password authenticate (AUTH PLAIN, or what the server
	// offers); both "" when the URL has no user: no authentication.
	Username string
	Password string
}

// Addr returns the server's address, host:port.
func (s SMTP) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// summary describes s for the startup log line, without its password:
// "none" for no server (mails are logged).
func (s *SMTP) summary() string {
	if s == nil {
		return "none"
	}
	sum := string(s.Security) + " " + s.Addr()
	if s.Username != "" {
		sum += " as " + s.Username
	}
	return sum
}

// smtpSchemes maps each scheme SMTP_URL accepts to its security and port.
var smtpSchemes = map[string]struct {
	security SMTPSecurity
	port     int
}{
	"smtp":          {SMTPStartTLS, 587},
	"smtps":         {SMTPImplicitTLS, 465},
	"smtp+insecure": {SMTPPlaintext, 25},
}

// smtpForms names the forms of SMTP_URL, for errors.
const smtpForms = "smtp://USER:PASS@HOST:587 (STARTTLS), smtps://USER:PASS@HOST:465 (TLS) or smtp+insecure://HOST:PORT (plain text, not in production)"

// smtp reads SMTP_URL or the file SMTP_URL_FILE names (see secret): nil
// when neither is set. The URL's user and password are percent-decoded.
// The value never appears in a message: it holds a password.
func (l *loader) smtp(prod bool) *SMTP {
	v, from, ok := l.secret("SMTP_URL")
	if !ok {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil {
		l.problemf(from, "is not a URL; use %s", smtpForms)
		return nil
	}
	scheme, known := smtpSchemes[strings.ToLower(u.Scheme)]
	if !known || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		l.problemf(from, "is not one of %s", smtpForms)
		return nil
	}
	s := &SMTP{Security: scheme.security, Host: u.Hostname(), Port: scheme.port}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			l.problemf(from, "has a port that is not 1-65535")
			return nil
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	if prod && s.Security == SMTPPlaintext {
		l.problemf(from, "sends mail and its password in plain text (smtp+insecure://), which production refuses; use smtp:// (STARTTLS) or smtps://")
		return nil
	}
	return s
}

// mailFrom reads the From address of mails, "Name <address>" or a bare
// address, as net/mail parses it.
func (l *loader) mailFrom(name, def string) string {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	if _, err := mail.ParseAddress(v); err != nil {
		l.problemf(name, "%q is not a mail address such as Obsqra <noreply@example.com>", v)
		return def
	}
	return v
}

// publicAppURL reads the frontend's base URL, an http(s) URL without a
// query or fragment, and returns it without a trailing slash, so that
// links are the URL plus a path.
func (l *loader) publicAppURL(name, def string) string {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || !isHTTPURL(v) || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		l.problemf(name, "%q is not an http:// or https:// base URL (no user, query or fragment)", v)
		return def
	}
	return strings.TrimRight(v, "/")
}
