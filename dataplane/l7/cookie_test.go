package l7

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestHTTPServerTokens(t *testing.T) {
	a := newServerTokens([]byte("secret-a"))
	b := newServerTokens([]byte("secret-b"))
	id := "10.0.1.10:8080"
	tok := a.token(id)
	if strings.Contains(tok, "10.0.1") || strings.Contains(tok, "8080") {
		t.Errorf("server id %q reveals the backend", tok)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(raw) != tokenBytes {
		t.Errorf("server id %q: not %d bytes of base64url (%v)", tok, tokenBytes, err)
	}
	if tok == b.token(id) {
		t.Error("two secrets give the same server id: the secret is not used")
	}
	if tok == a.token("10.0.1.11:8080") {
		t.Error("two backends share a server id")
	}
	if _, ok := a.lookup([]byte(tok)); ok {
		t.Error("a server id is known before its backend was added")
	}
	a.add([]string{id, "10.0.1.11:8080"})
	if got, ok := a.lookup([]byte(tok)); !ok || got != id {
		t.Errorf("lookup(%q) = %q, %v; want %q", tok, got, ok, id)
	}
	// Forgeries: another secret's id, a backend address, a tweaked id.
	tweaked := []byte(tok)
	tweaked[0] ^= 1
	for _, forged := range []string{b.token(id), id, base64.RawURLEncoding.EncodeToString([]byte(id)), string(tweaked), ""} {
		if got, ok := a.lookup([]byte(forged)); ok {
			t.Errorf("forged value %q accepted as %q", forged, got)
		}
	}
	// Ids stay known across reloads that drop the backend (stale, not forged).
	a.add([]string{"10.0.1.12:8080"})
	if _, ok := a.lookup([]byte(tok)); !ok {
		t.Error("a server id was forgotten when another backend was added")
	}
}

func TestHTTPRequestCookie(t *testing.T) {
	tokens := newServerTokens([]byte("k"))
	ids := []string{"10.0.0.1:80", "10.0.0.2:80"}
	tokens.add(ids)
	tok := tokens.token(ids[0])
	insert := newPersistence(Persistence{Mode: InsertCookie, Timeout: 30 * time.Minute}, DefaultCookie, ids, tokens)
	rewrite := newPersistence(Persistence{Mode: RewriteCookie, Cookie: "JSESSIONID"}, "JSESSIONID", ids, tokens)
	tests := []struct {
		name   string
		ps     *persistence
		cookie string
		state  cookieState
		id     string
		app    string
	}{
		{"insert: absent", insert, "a=1; b=2", cookieAbsent, "", ""},
		{"insert: valid", insert, "a=1; XLBSERVERID=" + tok + "; b=2", cookieValid, ids[0], ""},
		{"insert: quoted", insert, `XLBSERVERID="` + tok + `"`, cookieValid, ids[0], ""},
		{"insert: forged", insert, "XLBSERVERID=10.0.0.2:80", cookieForged, "", ""},
		{"insert: garbage", insert, "XLBSERVERID=\x7f\x01", cookieForged, "", ""},
		{"insert: name is a suffix", insert, "MYXLBSERVERID=" + tok, cookieAbsent, "", ""},
		{"rewrite: valid", rewrite, "JSESSIONID=" + tok + "~app123", cookieValid, ids[0], "app123"},
		{"rewrite: not ours yet", rewrite, "JSESSIONID=app123", cookieAbsent, "", "app123"},
		{"rewrite: forged prefix", rewrite, "JSESSIONID=evil~app123", cookieForged, "", "app123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, id, app := tc.ps.requestCookie([]header{{name: []byte("Cookie"), value: []byte(tc.cookie), kind: hCookie}})
			if st != tc.state || id != tc.id || string(app) != tc.app {
				t.Errorf("got state %d id %q app %q, want %d %q %q", st, id, app, tc.state, tc.id, tc.app)
			}
		})
	}
}

func TestHTTPCookieFieldForBackend(t *testing.T) {
	tokens := newServerTokens([]byte("k"))
	ids := []string{"10.0.0.1:80"}
	tokens.add(ids)
	tok := tokens.token(ids[0])
	insert := newPersistence(Persistence{Mode: InsertCookie}, DefaultCookie, ids, tokens)
	rewrite := newPersistence(Persistence{Mode: RewriteCookie, Cookie: "SID"}, "SID", ids, tokens)
	none := newPersistence(Persistence{}, "", ids, tokens)
	tests := []struct {
		name string
		ps   *persistence
		in   string
		want string
	}{
		{"insert: stripped in the middle", insert, "a=1; XLBSERVERID=" + tok + "; b=2", "Cookie: a=1; b=2\r\n"},
		{"insert: stripped first", insert, "XLBSERVERID=" + tok + "; b=2", "Cookie: b=2\r\n"},
		{"insert: stripped last", insert, "a=1; XLBSERVERID=" + tok, "Cookie: a=1\r\n"},
		{"insert: only cookie dropped", insert, "XLBSERVERID=" + tok, ""},
		{"insert: others untouched", insert, "a=1; b=2", "Cookie: a=1; b=2\r\n"},
		{"rewrite: prefix stripped", rewrite, "x=1; SID=" + tok + "~abc; y=2", "Cookie: x=1; SID=abc; y=2\r\n"},
		{"rewrite: plain app cookie kept", rewrite, "SID=abc", "Cookie: SID=abc\r\n"},
		{"none: untouched", none, "XLBSERVERID=" + tok, "Cookie: XLBSERVERID=" + tok + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.ps.appendCookieField(nil, &header{name: []byte("Cookie"), value: []byte(tc.in), kind: hCookie})
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHTTPSetCookieForClient(t *testing.T) {
	tokens := newServerTokens([]byte("k"))
	ids := []string{"10.0.0.1:80", "10.0.0.2:80"}
	tokens.add(ids)
	insert := newPersistence(Persistence{Mode: InsertCookie, Timeout: 1800 * time.Second}, DefaultCookie, ids, tokens)
	rewrite := newPersistence(Persistence{Mode: RewriteCookie, Cookie: "SID"}, "SID", ids, tokens)
	sc1, sc2 := insert.cookies[ids[0]], rewrite.cookies[ids[0]]
	tok := tokens.token(ids[0])

	if want := "XLBSERVERID=" + tok + "; Max-Age=1800; Path=/; HttpOnly"; sc1.insert != want {
		t.Errorf("inserted cookie %q, want %q", sc1.insert, want)
	}
	v, was := rewrite.appendSetCookieValue(nil, []byte("SID=abc; Path=/; HttpOnly"), sc2)
	if !was || string(v) != "SID="+tok+"~abc; Path=/; HttpOnly" {
		t.Errorf("rewritten Set-Cookie %q (%v)", v, was)
	}
	if v, was := rewrite.appendSetCookieValue(nil, []byte("OTHER=abc"), sc2); was || string(v) != "OTHER=abc" {
		t.Errorf("other cookie became %q (%v)", v, was)
	}

	binding := []struct {
		name         string
		ps           *persistence
		sc           *serverCookie
		cs           cookieState
		prefer, id   string
		app          string
		sawCookie    bool
		want         string
		wantBindings bool
	}{
		{"insert: first visit", insert, sc1, cookieAbsent, "", ids[0], "", false, sc1.insert, true},
		{"insert: same server", insert, sc1, cookieValid, ids[0], ids[0], "", false, "", false},
		{"insert: re-picked", insert, sc1, cookieValid, ids[1], ids[0], "", false, sc1.insert, true},
		{"insert: forged", insert, sc1, cookieForged, "", ids[0], "", false, sc1.insert, true},
		{"rewrite: app cookie not set yet", rewrite, sc2, cookieAbsent, "", ids[0], "", false, "", false},
		{"rewrite: re-picked, app kept", rewrite, sc2, cookieValid, ids[1], ids[0], "abc", false, "SID=" + tok + "~abc; Path=/", true},
		{"rewrite: re-picked, app set anew", rewrite, sc2, cookieValid, ids[1], ids[0], "abc", true, "", false},
	}
	for _, tc := range binding {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.ps.appendBinding(nil, tc.sc, tc.cs, tc.prefer, tc.id, []byte(tc.app), tc.sawCookie)
			if ok != tc.wantBindings || string(got) != tc.want {
				t.Errorf("got %q (%v), want %q (%v)", got, ok, tc.want, tc.wantBindings)
			}
		})
	}
}
