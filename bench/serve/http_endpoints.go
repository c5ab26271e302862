package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Keys added to the /headers answer next to the request's header fields.
const (
	HeadersKeyHost       = "_host"
	HeadersKeyRemoteAddr = "_remote_addr"
	HeadersKeyProto      = "_proto"
	HeadersKeyURI        = "_uri"
)

func (s *HTTP) serveName(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = s.hdrPlain
	h["Content-Length"] = s.hdrNameLen
	_, _ = w.Write(s.body) // HEAD: net/http drops the body
}

func (s *HTTP) serveHealth(w http.ResponseWriter) {
	w.Header()["Content-Type"] = s.hdrPlain
	if !s.Healthy() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "unhealthy")
		return
	}
	_, _ = io.WriteString(w, "ok")
}

func (s *HTTP) serveHeaders(w http.ResponseWriter, r *http.Request) {
	m := make(map[string][]string, len(r.Header)+4)
	for k, v := range r.Header {
		m[k] = v
	}
	m[HeadersKeyHost] = []string{r.Host}
	m[HeadersKeyRemoteAddr] = []string{r.RemoteAddr}
	m[HeadersKeyProto] = []string{r.Proto}
	m[HeadersKeyURI] = []string{r.RequestURI}
	writeJSON(w, m)
}

func (s *HTTP) serveCookie(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := &http.Cookie{Name: q.Get("name"), Value: q.Get("value"), Path: "/"}
	if ma := q.Get("max_age"); ma != "" {
		n, err := strconv.Atoi(ma)
		if err != nil {
			http.Error(w, "max_age: not an integer", http.StatusBadRequest)
			return
		}
		c.MaxAge = n
	}
	if err := c.Valid(); err != nil {
		http.Error(w, "cookie: "+err.Error(), http.StatusBadRequest)
		return
	}
	http.SetCookie(w, c)
	s.serveName(w)
}

func (s *HTTP) serveCookies(w http.ResponseWriter, r *http.Request) {
	cookies := r.Cookies()
	m := make(map[string]string, len(cookies))
	for _, c := range cookies {
		m[c.Name] = c.Value
	}
	writeJSON(w, m)
}

func (s *HTTP) serveBytes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := strconv.ParseInt(q.Get("n"), 10, 64)
	if err != nil || n < 0 {
		http.Error(w, "n: want a byte count >= 0", http.StatusBadRequest)
		return
	}
	n = min(n, MaxBytes)
	h := w.Header()
	if t := q.Get("type"); t != "" {
		h.Set("Content-Type", t)
	} else {
		h["Content-Type"] = s.hdrPlain
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if r.Method == http.MethodHead {
		return
	}
	for n > 0 {
		chunk := s.filler[:min(n, int64(len(s.filler)))]
		if _, err := w.Write(chunk); err != nil {
			return
		}
		n -= int64(len(chunk))
	}
}

func (s *HTTP) serveEcho(w http.ResponseWriter, r *http.Request) {
	// HTTP/1 servers otherwise stop reading the request once the response starts;
	// HTTP/2 is always full duplex and reports ErrNotSupported.
	_ = http.NewResponseController(w).EnableFullDuplex()
	h := w.Header()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		h.Set("Content-Type", ct)
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}
	if r.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	_, _ = io.Copy(w, r.Body)
}

func (s *HTTP) serveDelay(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
	if err != nil || ms < 0 {
		http.Error(w, "ms: want milliseconds >= 0", http.StatusBadRequest)
		return
	}
	d := MaxDelay
	if ms < int64(MaxDelay/time.Millisecond) {
		d = time.Duration(ms) * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		s.serveName(w)
	case <-r.Context().Done():
		// The client left or the server is shutting down: end without an answer, not
		// with the empty 200 net/http would send for a handler that just returns.
		panic(http.ErrAbortHandler)
	}
}

func (s *HTTP) serveStatus(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Path[len("/status/"):])
	if err != nil || code < 200 || code > 599 {
		http.Error(w, "status: want a code in 200-599", http.StatusBadRequest)
		return
	}
	if code == http.StatusNoContent || code == http.StatusNotModified {
		w.WriteHeader(code) // no body allowed
		return
	}
	h := w.Header()
	h["Content-Type"] = s.hdrPlain
	h["Content-Length"] = s.hdrNameLen
	w.WriteHeader(code)
	_, _ = w.Write(s.body)
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "json: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	_, _ = w.Write(append(b, '\n'))
}

// makeFiller returns n bytes of text lines that compress well but are not one repeated
// byte, so gzip and throughput tests see a realistic ratio.
func makeFiller(n int) []byte {
	const line = "xlb bench payload: the quick brown fox jumps over the lazy dog #"
	b := make([]byte, 0, n+len(line)+8)
	for i := 0; len(b) < n; i++ {
		b = append(b, line...)
		b = strconv.AppendInt(b, int64(i%1000), 10)
		b = append(b, '\n')
	}
	return b[:n]
}
