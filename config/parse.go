// The loader: one parser per kind of variable (numbers in a range, byte
// sizes, hosts, URLs, database URLs, the secret key, origins, address
// prefixes, emails, log settings, booleans, durations), each recording a
// problem that names the variable instead of failing at the first, and
// secret, which reads a credential from its variable or from the file its
// *_FILE variable names.

package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
)

// httpURL reads an http(s) base URL, without a trailing slash, from name or
// name_FILE (see secret). The value never appears in a message, because
// a provider's URL may carry an API key in its path or query.
func (l *loader) httpURL(name, def string) string {
	v, from, ok := l.secret(name)
	if !ok {
		v = def
	}
	if !isHTTPURL(v) {
		l.problemf(from, "is not an http:// or https:// URL")
		return def
	}
	return strings.TrimRight(v, "/")
}

// httpURLs reads a comma-separated list of http(s) URLs (none when unset),
// each without a trailing slash, from name or name_FILE (see secret). A
// bad entry is named by its position, never by its value, as in httpURL.
func (l *loader) httpURLs(name string) []string {
	v, from, ok := l.secret(name)
	if !ok {
		return nil
	}
	parts := list(v)
	out := make([]string, 0, len(parts))
	for i, part := range parts {
		if !isHTTPURL(part) {
			l.problemf(from, "entry %d of %d is not an http:// or https:// URL", i+1, len(parts))
			return nil
		}
		out = append(out, strings.TrimRight(part, "/"))
	}
	return out
}

// isHTTPURL reports whether s is an absolute http or https URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// usd reads an amount in USD from 0 to max.
func (l *loader) usd(name, def string, max float64) float64 {
	v, ok := l.value(name)
	if !ok {
		v = def
	}
	d, err := obsqra.ParseDecimal(v)
	if err != nil || d.IsNegative() {
		l.problemf(name, "%q is not an amount in USD such as 0.50", v)
		return 0
	}
	f, _ := d.Rat().Float64()
	if f > max {
		l.problemf(name, "%q is more than %g USD", v, max)
		return 0
	}
	return f
}

// tiers reads three descending, non-negative decimals.
func (l *loader) tiers(name, def string) [3]obsqra.Decimal {
	v, ok := l.value(name)
	if !ok {
		v = def
	}
	var out [3]obsqra.Decimal
	parts := list(v)
	if len(parts) != 3 {
		l.problemf(name, "%q must be three amounts in USD, descending, e.g. %s", v, def)
		return out
	}
	for i, p := range parts {
		d, err := obsqra.ParseDecimal(p)
		if err != nil || d.IsNegative() {
			l.problemf(name, "%q: %q is not an amount in USD", v, p)
			return out
		}
		out[i] = d
	}
	if out[0].Cmp(out[1]) <= 0 || out[1].Cmp(out[2]) <= 0 {
		l.problemf(name, "%q must be descending (tier 0 needs the most TVL)", v)
	}
	return out
}

// loader reads variables and collects the problems found on the way, so
// that one run reports all of them.
type loader struct {
	getenv func(string) string
	// readFile reads the files that the *_FILE variables name (os.ReadFile
	// in the server).
	readFile func(string) ([]byte, error)
	problems []error
}

// value returns the trimmed value of the variable and whether it is set; an
// empty value counts as unset, as it does for a shell's ${VAR:-default}.
func (l *loader) value(name string) (string, bool) {
	v := strings.TrimSpace(l.getenv(name))
	return v, v != ""
}

// secret reads a variable that may carry a credential: from name itself,
// or from the file that name_FILE names (a Docker or Kubernetes secret
// mounted as a file), whose content is trimmed of surrounding whitespace.
// It returns the value; the variable to name in a message about the value,
// which is name, or "name (from name_FILE)" when the file gave it; and
// whether either variable is set. Setting both, a file that cannot be read
// and a file that holds only whitespace are problems naming name_FILE. A
// file's content never appears in a message.
func (l *loader) secret(name string) (v, from string, ok bool) {
	fileName := name + "_FILE"
	v, set := l.value(name)
	path, fileSet := l.value(fileName)
	switch {
	case set && fileSet:
		l.problemf(fileName, "is set together with %s; set only one of them", name)
		return "", name, false
	case set:
		return v, name, true
	case !fileSet:
		return "", name, false
	}
	b, err := l.readFile(path)
	if err != nil {
		l.problemf(fileName, "cannot read the file: %w", err)
		return "", fileName, false
	}
	v = strings.TrimSpace(string(b))
	if v == "" {
		l.problemf(fileName, "the file %q is empty", path)
		return "", fileName, false
	}
	return v, name + " (from " + fileName + ")", true
}

func (l *loader) problemf(name, format string, args ...any) {
	l.problems = append(l.problems, fmt.Errorf(name+": "+format, args...))
}

// intRange reads an integer from min to max; what describes such a value in
// the error message.
func (l *loader) intRange(name string, def, min, max int, what string) int {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		l.problemf(name, "%q is not %s", v, what)
		return def
	}
	return n
}

// bufferBytes reads a live buffer's budget in bytes, 1024 to 2^36 (64 GiB).
func (l *loader) bufferBytes(name string, def int64) int64 {
	return int64(l.intRange(name, int(def), 1024, 1<<36, "a whole number of bytes from 1024 to 68719476736"))
}

// host reads a host name or IP address to listen on. A port is refused here
// because it belongs in API_PORT.
func (l *loader) host(name, def string) string {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	h := strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	valid := !strings.ContainsAny(h, " \t/[]@")
	if valid && strings.Contains(h, ":") {
		_, err := netip.ParseAddr(h)
		valid = err == nil
	}
	if !valid {
		l.problemf(name, "%q is not a host name or IP address (the port goes in API_PORT)", v)
		return def
	}
	return h
}

// listenAddr reads the address of a listener, host:port, where host may
// be empty (every interface), a host name or an IP address (an IPv6 one in
// brackets) and port is 1-65535; "off" (in any case) returns "".
func (l *loader) listenAddr(name, def string) string {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	if strings.EqualFold(v, "off") {
		return ""
	}
	host, port, err := net.SplitHostPort(v)
	valid := err == nil && !strings.ContainsAny(host, " \t/[]@")
	if valid && strings.Contains(host, ":") {
		_, err := netip.ParseAddr(host)
		valid = err == nil
	}
	if n, err := strconv.Atoi(port); !valid || err != nil || n < 1 || n > 65535 {
		l.problemf(name, "%q is not host:port (a port 1-65535, such as 127.0.0.1:9090 or :9090) nor off", v)
		return def
	}
	return v
}

// databaseURL reads a database URL from name or name_FILE (see secret).
// Its value never appears in a message, because it may hold a password.
func (l *loader) databaseURL(name, def string) string {
	v, from, ok := l.secret(name)
	if !ok {
		return def
	}
	lower := strings.ToLower(v)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		if _, err := url.Parse(v); err != nil {
			l.problemf(from, "is not a valid URL (percent-encode special characters in the password)")
			return def
		}
	case strings.HasPrefix(lower, "sqlite:"), strings.HasPrefix(lower, "file:"):
		if _, path, _ := strings.Cut(v, ":"); path == "" {
			l.problemf(from, "names no database file (e.g. sqlite:data/obsqra.db)")
			return def
		}
	default:
		l.problemf(from, "does not start with postgres://, postgresql://, sqlite: or file:")
		return def
	}
	return v
}

// dialect returns "PostgreSQL" or "SQLite" for a database URL accepted by
// databaseURL, "" for anything else.
func dialect(dbURL string) string {
	lower := strings.ToLower(dbURL)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return "PostgreSQL"
	case strings.HasPrefix(lower, "sqlite:"), strings.HasPrefix(lower, "file:"):
		return "SQLite"
	}
	return ""
}

// secretKey reads SECRET_KEY or the file named by SECRET_KEY_FILE (see
// secret). The key itself never appears in a message, only its length.
func (l *loader) secretKey() []byte {
	key, from, ok := l.secret("SECRET_KEY")
	if !ok {
		return nil
	}
	if len(key) < MinSecretKeyLen {
		l.problemf(from, "is %d bytes long; it must be at least %d", len(key), MinSecretKeyLen)
		return nil
	}
	return []byte(key)
}

// list splits a comma-separated value into trimmed, non-empty entries.
func list(v string) []string {
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// origins reads a list of CORS origins. A value made only of commas sets an
// empty list, which is how development turns its default origins off.
func (l *loader) origins(name, def string) []string {
	v, ok := l.value(name)
	if !ok {
		v = def
	}
	var out []string
	for _, item := range list(v) {
		origin, ok := parseOrigin(item)
		if !ok {
			l.problemf(name, `%q is not an origin (scheme://host[:port], without a path or trailing slash) or "*"`, item)
			continue
		}
		out = append(out, origin)
	}
	return out
}

// parseOrigin checks that s is "*" or an origin as a browser sends it in the
// Origin header, and returns it with scheme and host in lower case so that
// the CORS middleware can compare strings.
func parseOrigin(s string) (string, bool) {
	if s == "*" {
		return s, true
	}
	if strings.ContainsAny(s, "?#* \t") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.User != nil || u.Path != "" || u.Hostname() == "" {
		return "", false
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", false
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), true
}

// headerNames reads a list of HTTP header names (RFC 9110 tokens, such as
// X-Tenant-ID).
func (l *loader) headerNames(name string) []string {
	v, _ := l.value(name)
	var out []string
	for _, item := range list(v) {
		if !validHeaderName(item) {
			l.problemf(name, "%q is not a header name (letters, digits and !#$%%&'*+-.^_`|~)", item)
			continue
		}
		out = append(out, item)
	}
	return out
}

// validHeaderName reports whether s is a token (RFC 9110, 5.6.2), the
// grammar of a header field name.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// prefixes reads a list of CIDRs; a bare IP address is the prefix of that
// one address. IPv4-mapped IPv6 addresses and prefixes are read as IPv4,
// as the server compares client addresses in that form, and host bits are
// cleared (10.1.2.3/8 is 10.0.0.0/8).
func (l *loader) prefixes(name string) []netip.Prefix {
	v, _ := l.value(name)
	var out []netip.Prefix
	for _, item := range list(v) {
		p, ok := parsePrefix(item)
		if !ok {
			l.problemf(name, "%q is not a CIDR such as 10.0.0.0/8 or fd00::/8, nor an IP address", item)
			continue
		}
		out = append(out, p)
	}
	return out
}

// parsePrefix parses a CIDR or a bare IP address, without a zone.
func parsePrefix(s string) (netip.Prefix, bool) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			// Wider than the mapped range: it covers IPv6 addresses too,
			// which an IPv4 prefix cannot say.
			return netip.Prefix{}, false
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// emails reads a list of email addresses, lower-cased.
func (l *loader) emails(name string) []string {
	v, _ := l.value(name)
	var out []string
	for _, item := range list(v) {
		item = strings.ToLower(item)
		// ParseAddress also accepts `Name <a@b>`; only the bare address is
		// meant here, so anything that does not round-trip is refused.
		if a, err := mail.ParseAddress(item); err != nil || a.Address != item {
			l.problemf(name, "%q is not an email address", item)
			continue
		}
		out = append(out, item)
	}
	return out
}

func (l *loader) logLevel(name string, def slog.Level) slog.Level {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	l.problemf(name, "%q is not one of debug, info, warn, error", v)
	return def
}

func (l *loader) logFormat(name string, def LogFormat) LogFormat {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	switch f := LogFormat(strings.ToLower(v)); f {
	case LogFormatText, LogFormatJSON:
		return f
	}
	l.problemf(name, "%q is not one of text, json", v)
	return def
}

func (l *loader) boolean(name string, def bool) bool {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true
	case "false", "0", "no":
		return false
	}
	l.problemf(name, "%q is not one of true, false, 1, 0, yes, no", v)
	return def
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		l.problemf(name, "%q is not a duration such as 15s or 2m", v)
		return def
	}
	if d <= 0 {
		l.problemf(name, "%q is not a positive duration such as 15s or 2m", v)
		return def
	}
	return d
}

// Budget is a cost budget: Points at once, refilled evenly over Window.
type Budget struct {
	Points int64
	Window time.Duration
}

// String writes b as the variables read it: points/window.
func (b Budget) String() string {
	w := b.Window.String()
	// 1m0s reads better as 1m, 1h0m0s as 1h.
	w = strings.TrimSuffix(strings.TrimSuffix(w, "0s"), "0m")
	if strings.HasSuffix(w, "h") || strings.HasSuffix(w, "m") || strings.HasSuffix(w, "s") {
		return strconv.FormatInt(b.Points, 10) + "/" + w
	}
	return strconv.FormatInt(b.Points, 10) + "/" + b.Window.String()
}

// Bounds of a budget: at least the points of an operation at the
// complexity limit (5000) and its price, so that any operation fits an
// empty budget; windows from a second to a day.
const (
	minBudgetPoints = 10000
	maxBudgetPoints = 1_000_000_000_000
	minBudgetWindow = time.Second
	maxBudgetWindow = 24 * time.Hour
)

// budget reads points/window, such as 30000/1m.
func (l *loader) budget(name string, def Budget) Budget {
	v, ok := l.value(name)
	if !ok {
		return def
	}
	points, window, found := strings.Cut(v, "/")
	n, err := strconv.ParseInt(strings.TrimSpace(points), 10, 64)
	w, werr := time.ParseDuration(strings.TrimSpace(window))
	if !found || err != nil || werr != nil || n < minBudgetPoints || n > maxBudgetPoints || w < minBudgetWindow || w > maxBudgetWindow {
		l.problemf(name, "%q is not points/window with points from %d to %d and a Go duration from 1s to 24h, such as 30000/1m",
			v, minBudgetPoints, int64(maxBudgetPoints))
		return def
	}
	return Budget{Points: n, Window: w}
}
