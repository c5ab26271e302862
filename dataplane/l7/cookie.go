package l7

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// tokenBytes is how much of the HMAC a server id keeps: 96 bits, 16
// characters of base64url.
const tokenBytes = 12

// serverTokens maps the opaque server ids of persistence cookies to backend
// ids. A server id is HMAC-SHA256(secret, backend id), truncated: it does not
// reveal the backend's address, and without the secret no value can be made
// up that names a backend. The secret lives as long as the engine, so reloads
// keep every cookie valid. Ids are never forgotten, so a cookie naming a
// backend that was removed is recognised as stale (re-picked), not forged.
type serverTokens struct {
	secret []byte
	mu     sync.Mutex // serializes additions
	byTok  atomic.Pointer[map[string]string]
}

func newServerTokens(secret []byte) *serverTokens {
	t := &serverTokens{secret: secret}
	m := map[string]string{}
	t.byTok.Store(&m)
	return t
}

// token returns the server id of a backend id.
func (t *serverTokens) token(id string) string {
	mac := hmac.New(sha256.New, t.secret)
	mac.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:tokenBytes])
}

// add registers backend ids; called when a configuration is prepared.
func (t *serverTokens) add(ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.byTok.Load()
	var m map[string]string
	for _, id := range ids {
		tok := t.token(id)
		if _, ok := old[tok]; ok {
			continue
		}
		if m == nil {
			m = make(map[string]string, len(old)+len(ids))
			for k, v := range old {
				m[k] = v
			}
		}
		m[tok] = id
	}
	if m != nil {
		t.byTok.Store(&m)
	}
}

// lookup returns the backend id a server id names.
func (t *serverTokens) lookup(tok []byte) (string, bool) {
	id, ok := (*t.byTok.Load())[string(tok)]
	return id, ok
}

// persistence is a listener's compiled cookie persistence.
type persistence struct {
	mode PersistenceMode
	name string
	// cookies holds, per backend id, its server id and the ready-made
	// Set-Cookie line inserted in responses (insert_cookie).
	cookies map[string]*serverCookie
	tokens  *serverTokens
}

type serverCookie struct {
	token  string
	insert string // insert_cookie's Set-Cookie value: "NAME=token; Max-Age=N; Path=/; HttpOnly"
}

func newPersistence(p Persistence, name string, ids []string, tokens *serverTokens) *persistence {
	ps := &persistence{mode: p.Mode, name: name, cookies: make(map[string]*serverCookie, len(ids)), tokens: tokens}
	if p.Mode == PersistNone {
		return ps
	}
	for _, id := range ids {
		tok := tokens.token(id)
		sc := &serverCookie{token: tok}
		if p.Mode == InsertCookie {
			v := name + "=" + tok
			if p.Timeout > 0 {
				v += "; Max-Age=" + strconv.FormatInt(int64(p.Timeout/time.Second), 10)
			}
			sc.insert = v + "; Path=/; HttpOnly"
		}
		ps.cookies[id] = sc
	}
	return ps
}

// cookieState is what the request's cookie said about persistence.
type cookieState uint8

const (
	cookieAbsent cookieState = iota
	cookieValid              // names a known server id
	cookieForged             // present but not a server id this engine issued
)

// requestCookie finds the persistence cookie in the request's Cookie fields:
// the server id it names (a known one), and for rewrite_cookie the app's
// own value.
func (ps *persistence) requestCookie(hdrs []header) (state cookieState, backendID string, app []byte) {
	for i := range hdrs {
		if hdrs[i].kind != hCookie {
			continue
		}
		val, _, _, ok := findCookie(hdrs[i].value, ps.name)
		if !ok {
			continue
		}
		tok := val
		if ps.mode == RewriteCookie {
			j := bytes.IndexByte(val, '~')
			if j < 0 {
				// The app's cookie, not rewritten by us: no persistence.
				return cookieAbsent, "", val
			}
			tok, app = val[:j], val[j+1:]
		}
		id, known := ps.tokens.lookup(tok)
		if !known {
			return cookieForged, "", app
		}
		return cookieValid, id, app
	}
	return cookieAbsent, "", nil
}

// findCookie returns the value of the cookie called name in a Cookie field
// value ("a=1; b=2") and the bounds of its name=value pair.
func findCookie(v []byte, name string) (val []byte, start, end int, ok bool) {
	for i := 0; i < len(v); {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		j := i
		for j < len(v) && v[j] != ';' {
			j++
		}
		pair := v[i:j]
		if eq := bytes.IndexByte(pair, '='); eq >= 0 && string(trimOWS(pair[:eq])) == name {
			val := trimOWS(pair[eq+1:])
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val, i, i + len(trimOWS(pair)), true
		}
		i = j + 1
	}
	return nil, 0, 0, false
}

// appendCookieField appends a request's Cookie field for the backend: the
// persistence cookie removed (insert_cookie: the app never sees the
// balancer's cookie) or replaced by the app's own value (rewrite_cookie).
func (ps *persistence) appendCookieField(dst []byte, h *header) []byte {
	if ps.mode == PersistNone {
		return appendField(dst, h.name, h.value)
	}
	val, start, end, ok := findCookie(h.value, ps.name)
	if !ok {
		return appendField(dst, h.name, h.value)
	}
	before := trimCookieSep(h.value[:start], true)
	after := trimCookieSep(h.value[end:], false)
	if ps.mode == RewriteCookie {
		if j := bytes.IndexByte(val, '~'); j >= 0 {
			val = val[j+1:]
		}
		dst = append(dst, h.name...)
		dst = append(dst, ": "...)
		if len(before) > 0 {
			dst = append(dst, before...)
			dst = append(dst, "; "...)
		}
		dst = append(dst, ps.name...)
		dst = append(dst, '=')
		dst = append(dst, val...)
		if len(after) > 0 {
			dst = append(dst, "; "...)
			dst = append(dst, after...)
		}
		return append(dst, "\r\n"...)
	}
	if len(before) == 0 && len(after) == 0 {
		return dst // the balancer's cookie was the only one
	}
	dst = append(dst, h.name...)
	dst = append(dst, ": "...)
	dst = append(dst, before...)
	if len(before) > 0 && len(after) > 0 {
		dst = append(dst, "; "...)
	}
	dst = append(dst, after...)
	return append(dst, "\r\n"...)
}

// trimCookieSep trims spaces and the ';' separating b from the pair next to it.
func trimCookieSep(b []byte, trailing bool) []byte {
	b = trimOWS(b)
	if trailing {
		b = bytes.TrimSuffix(b, []byte{';'})
	} else {
		b = bytes.TrimPrefix(b, []byte{';'})
	}
	return trimOWS(b)
}

// appendSetCookieValue appends the value of a response's Set-Cookie field
// as the client gets it: with rewrite_cookie the backend's cookie gets the
// server id prefix. It reports whether it was the persistence cookie.
func (ps *persistence) appendSetCookieValue(dst, v []byte, sc *serverCookie) ([]byte, bool) {
	if ps.mode != RewriteCookie || sc == nil {
		return append(dst, v...), false
	}
	eq := bytes.IndexByte(v, '=')
	if eq < 0 || string(trimOWS(v[:eq])) != ps.name {
		return append(dst, v...), false
	}
	dst = append(dst, ps.name...)
	dst = append(dst, '=')
	dst = append(dst, sc.token...)
	dst = append(dst, '~')
	return append(dst, trimOWS(v[eq+1:])...), true
}

// appendBinding appends the value of the Set-Cookie that binds the client
// to backend id, if the request's cookie did not already; ok is false when
// none is needed. sawCookie says the backend set the rewrite_cookie cookie
// itself (already rewritten).
func (ps *persistence) appendBinding(dst []byte, sc *serverCookie, cs cookieState, prefer, id string, app []byte, sawCookie bool) ([]byte, bool) {
	if sc == nil || (cs == cookieValid && prefer == id) {
		return dst, false
	}
	switch ps.mode {
	case InsertCookie:
		return append(dst, sc.insert...), true
	case RewriteCookie:
		// The app's cookie names another (or no valid) server: point it at
		// this one, keeping the app's value, unless the app set it anew.
		if cs == cookieAbsent || sawCookie {
			return dst, false
		}
		dst = append(dst, ps.name...)
		dst = append(dst, '=')
		dst = append(dst, sc.token...)
		dst = append(dst, '~')
		dst = append(dst, app...)
		return append(dst, "; Path=/"...), true
	}
	return dst, false
}

func appendField(dst, name, value []byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, ": "...)
	dst = append(dst, value...)
	return append(dst, "\r\n"...)
}
