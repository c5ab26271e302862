package certs

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TicketLifetime is how long a session ticket resumes a session: a client
// that comes back later makes a full handshake.
const TicketLifetime = 300 * time.Second

// Settings are one https listener's TLS parameters.
type Settings struct {
	// Certificates are the server certificates; the first is the default,
	// the others are chosen by SNI (their DNS names, wildcards included).
	Certificates []*Server
	// ClientCA verifies client certificates; nil: none are asked for.
	ClientCA *CA
	// CRL, when set, refuses client certificates it revokes; it must be
	// signed by ClientCA.
	CRL *x509.RevocationList
	// Mutual requires a client certificate signed by ClientCA; without it a
	// client certificate is verified if the client sends one.
	Mutual bool
	// MinVersion is tls.VersionTLS12 (the default when zero) or
	// tls.VersionTLS13. Older versions are always refused.
	MinVersion uint16
	// NextProtos are the ALPN protocols, in preference order.
	NextProtos []string
}

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange (forward
// secrecy) with AEAD ciphers only. TLS 1.3 suites are not configurable and
// all qualify.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Compiled is Settings checked and ready to serve handshakes.
type Compiled struct {
	byName    map[string]*tls.Certificate // exact DNS names, lower case
	wildcards map[string]*tls.Certificate // "*.example.com" keyed ".example.com"
	def       *tls.Certificate
	cfg       *tls.Config // without the ticket hooks, which bind it to a Store
	revoked   map[string]struct{}
	crlIssuer []byte // raw subject of the CRL's issuer
	auth      string // what verified clients: tickets from another one are not honoured
}

// Compile checks s and indexes its certificates by name.
func Compile(s Settings) (*Compiled, error) {
	if len(s.Certificates) == 0 {
		return nil, errors.New("tls: no server certificate")
	}
	switch s.MinVersion {
	case 0:
		s.MinVersion = tls.VersionTLS12
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("tls: minimum version %#x: only TLS 1.2 and 1.3", s.MinVersion)
	}
	if s.Mutual && s.ClientCA == nil {
		return nil, errors.New("tls: mutual TLS needs a client CA")
	}
	if s.CRL != nil && s.ClientCA == nil {
		return nil, errors.New("tls: a CRL needs the client CA that signed it")
	}
	c := &Compiled{byName: map[string]*tls.Certificate{}, wildcards: map[string]*tls.Certificate{}}
	for i := len(s.Certificates) - 1; i >= 0; i-- {
		// Backwards: with a name on two certificates, the earlier one wins.
		srv := s.Certificates[i]
		cert := &srv.Certificate
		for _, n := range names(srv.Leaf()) {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			if suffix, ok := strings.CutPrefix(n, "*"); ok && strings.HasPrefix(suffix, ".") {
				c.wildcards[suffix] = cert
			} else {
				c.byName[n] = cert
			}
		}
		c.def = cert
	}
	cfg := &tls.Config{
		MinVersion:   s.MinVersion,
		CipherSuites: cipherSuites,
		NextProtos:   s.NextProtos,
		ClientAuth:   tls.NoClientCert,
	}
	// GetCertificate, not Certificates: the selection is ours, by SNI.
	cfg.GetCertificate = c.certificate
	h := sha256.New()
	if s.ClientCA != nil {
		cfg.ClientCAs = s.ClientCA.Pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if s.Mutual {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		for _, ca := range s.ClientCA.Certs {
			h.Write(ca.Raw)
		}
	}
	if s.CRL != nil {
		if err := s.ClientCA.CheckCRL(s.CRL); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c.revoked = map[string]struct{}{}
		for _, e := range s.CRL.RevokedCertificateEntries {
			c.revoked[e.SerialNumber.String()] = struct{}{}
		}
		c.crlIssuer = s.CRL.RawIssuer
		// VerifyConnection, not VerifyPeerCertificate: it also runs when a
		// session resumes, so a certificate revoked since is refused.
		cfg.VerifyConnection = c.checkRevoked
		h.Write(s.CRL.Raw)
	}
	c.auth = fmt.Sprintf("%d/%x", cfg.ClientAuth, h.Sum(nil))
	c.cfg = cfg
	return c, nil
}

// names are the host names a certificate serves: its DNS SANs, or its
// common name when it has none (old certificates).
func names(leaf *x509.Certificate) []string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	if leaf.Subject.CommonName != "" {
		return []string{leaf.Subject.CommonName}
	}
	return nil
}

// Select returns the certificate for an SNI name: an exact name, else a
// wildcard covering its first label, else the default.
func (c *Compiled) Select(serverName string) *tls.Certificate {
	n := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if n == "" {
		return c.def
	}
	if cert := c.byName[n]; cert != nil {
		return cert
	}
	if i := strings.IndexByte(n, '.'); i > 0 {
		if cert := c.wildcards[n[i:]]; cert != nil {
			return cert
		}
	}
	return c.def
}

func (c *Compiled) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.Select(hello.ServerName), nil
}

func (c *Compiled) checkRevoked(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	leaf := cs.PeerCertificates[0]
	if _, bad := c.revoked[leaf.SerialNumber.String()]; bad && string(leaf.RawIssuer) == string(c.crlIssuer) {
		return fmt.Errorf("client certificate %s (serial %s) is revoked", describe(leaf), leaf.SerialNumber)
	}
	return nil
}

// Store serves one listener's handshakes with the certificates set last:
// Set swaps them atomically, so new handshakes use the new ones while open
// connections carry on with what they negotiated. Its session tickets are
// its own (a ticket from another listener, whose clients another CA may
// verify, never resumes here), live TicketLifetime, and are encrypted with
// keys that RotateTickets replaces.
type Store struct {
	cur     atomic.Pointer[storeState]
	tickets *tls.Config // holds the ticket keys; only its Encrypt/DecryptTicket are used
	base    *tls.Config
	now     func() time.Time

	mu   sync.Mutex // serializes Set and RotateTickets
	keys [][32]byte // newest first
}

type storeState struct {
	c   *Compiled
	cfg *tls.Config // c.cfg with the ticket hooks
}

// NewStore returns a store with fresh ticket keys; Set gives it
// certificates. now is the clock for ticket ages (nil: time.Now).
func NewStore(now func() time.Time) (*Store, error) {
	if now == nil {
		now = time.Now
	}
	s := &Store{tickets: &tls.Config{Time: now}, now: now}
	if err := s.RotateTickets(); err != nil {
		return nil, err
	}
	s.base = &tls.Config{GetConfigForClient: s.configForClient}
	return s, nil
}

// Config is the tls.Config to serve with (tls.Server, QUIC): every
// handshake takes the settings current when it starts.
func (s *Store) Config() *tls.Config { return s.base }

// Current returns the compiled settings in use; nil before the first Set.
func (s *Store) Current() *Compiled {
	if st := s.cur.Load(); st != nil {
		return st.c
	}
	return nil
}

// Set makes c the settings of new handshakes. When the way clients are
// verified changes (another CA, CRL or mode), tickets issued under the old
// one stop resuming.
func (s *Store) Set(c *Compiled) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.cur.Load(); prev != nil && prev.c.auth != c.auth {
		if err := s.rotateLocked(true); err != nil {
			return err
		}
	}
	cfg := c.cfg.Clone()
	cfg.Time = s.now
	cfg.WrapSession = s.wrapSession
	cfg.UnwrapSession = s.unwrapSession
	s.cur.Store(&storeState{c: c, cfg: cfg})
	return nil
}

func (s *Store) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	st := s.cur.Load()
	if st == nil {
		return nil, errors.New("no certificate configured")
	}
	return st.cfg, nil
}

// RotateTickets makes a new key encrypt the tickets issued from now on; the
// previous key still decrypts (tickets live TicketLifetime, so rotating
// every TicketLifetime never cuts one short), older ones are dropped.
func (s *Store) RotateTickets() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rotateLocked(false)
}

func (s *Store) rotateLocked(dropAll bool) error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("session ticket key: %w", err)
	}
	keys := [][32]byte{k}
	if !dropAll && len(s.keys) > 0 {
		keys = append(keys, s.keys[0])
	}
	s.keys = keys
	s.tickets.SetSessionTicketKeys(keys)
	return nil
}

// ticketStamp marks the Extra entry holding a ticket's issue time.
const ticketStamp = "xlb-ticket-issued:"

func (s *Store) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	extra := ss.Extra[:0:0]
	for _, e := range ss.Extra {
		if !strings.HasPrefix(string(e), ticketStamp) {
			extra = append(extra, e)
		}
	}
	stamp := binary.BigEndian.AppendUint64([]byte(ticketStamp), uint64(s.now().UnixNano()))
	ss.Extra = append(extra, stamp)
	return s.tickets.EncryptTicket(cs, ss)
}

// unwrapSession resumes a session from a ticket this store issued less
// than TicketLifetime ago; any other ticket means a full handshake.
func (s *Store) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := s.tickets.DecryptTicket(identity, cs)
	if err != nil || ss == nil {
		return nil, nil //nolint:nilerr // an undecryptable ticket is not an error: no resumption
	}
	for _, e := range ss.Extra {
		if v, ok := strings.CutPrefix(string(e), ticketStamp); ok && len(v) == 8 {
			issued := time.Unix(0, int64(binary.BigEndian.Uint64([]byte(v))))
			if age := s.now().Sub(issued); age >= 0 && age < TicketLifetime {
				return ss, nil
			}
			return nil, nil
		}
	}
	return nil, nil
}
