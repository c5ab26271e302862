package l7

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xlbproject/xlb/dataplane/certs"
	"github.com/xlbproject/xlb/dataplane/certs/certstest"
)

// needTool skips a test whose external tool is missing; with CI=true
// (where .ci/run installs them) a missing tool fails it.
func needTool(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed: %v", tool, err)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// run runs a tool with stdin and returns its combined output and error.
func run(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// toolFixture is an https listener with SNI and mutual TLS, and its PEM
// files for the tools.
type toolFixture struct {
	e      *testEngine
	l      Listener
	dir    string
	port   string
	ca     string // the servers' CA
	client [2]string
	wrong  [2]string // a client certificate from another CA
}

func newToolFixture(t *testing.T, mutual bool) *toolFixture {
	t.Helper()
	b := startBackend(t, "be1")
	f := newTLSFixture(t)
	tf := &toolFixture{e: newEngine(t, Options{}), dir: t.TempDir()}
	write := func(name string, data []byte) string {
		p := filepath.Join(tf.dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tf.ca = write("ca.pem", f.ca.CertPEM)
	tf.l = testListener(t, server(b, 100))
	tf.l.Name = "lb/https/tools"
	tf.l.Headers = Headers{XForwardedProto: true}
	def, _ := f.server(t, "www", "www.example.com")
	api, _ := f.server(t, "api", "api.example.com")
	tf.l.TLS = &certs.Settings{Certificates: []*certs.Server{def, api}}
	if mutual {
		clientCA := certstest.NewCA(t, "client CA")
		cca, err := certs.ParseCA(clientCA.CertPEM)
		if err != nil {
			t.Fatal(err)
		}
		tf.l.TLS.ClientCA, tf.l.TLS.Mutual = cca, true
		good := certstest.NewClient(t, clientCA, "alice")
		bad := certstest.NewClient(t, certstest.NewCA(t, "evil CA"), "mallory")
		tf.client = [2]string{write("client.pem", good.CertPEM), write("client.key", good.KeyPEM)}
		tf.wrong = [2]string{write("wrong.pem", bad.CertPEM), write("wrong.key", bad.KeyPEM)}
	}
	tf.e.apply(Config{Listeners: []Listener{tf.l}})
	tf.port = strconv.Itoa(int(tf.l.Addr.Port()))
	return tf
}

func (tf *toolFixture) curl(t *testing.T, host string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"-sS", "--max-time", "10", "--cacert", tf.ca,
		"--resolve", host + ":" + tf.port + ":127.0.0.1", "-w", "\nhttp_version=%{http_version}\n"}, extra...)
	return run(t, "", "curl", append(args, "https://"+host+":"+tf.port+"/headers")...)
}

func (tf *toolFixture) sClient(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	return run(t, stdin, "openssl", append([]string{"s_client", "-connect", "127.0.0.1:" + tf.port,
		"-CAfile", tf.ca, "-verify_return_error"}, args...)...)
}

const closeRequest = "GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n"

func TestHTTPSWithOpenSSLAndCurl(t *testing.T) {
	needTool(t, "openssl", "curl")
	tf := newToolFixture(t, false)

	// SNI picks the certificate; no SNI gets the default (the first).
	for sni, want := range map[string]string{"api.example.com": "CN=api.example.com", "www.example.com": "CN=www.example.com"} {
		out, err := tf.sClient(t, "", "-servername", sni, "-verify_hostname", sni)
		if err != nil || !strings.Contains(strings.ReplaceAll(out, " = ", "="), "subject="+want) {
			t.Errorf("s_client -servername %s: %v\n%s", sni, err, out)
		}
	}
	out, _ := tf.sClient(t, "", "-noservername")
	if !strings.Contains(strings.ReplaceAll(out, " = ", "="), "subject=CN=www.example.com") {
		t.Errorf("s_client without SNI: not the default certificate\n%s", out)
	}

	// Resumption within the ticket lifetime, TLS 1.2 and 1.3.
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		sess := filepath.Join(tf.dir, "sess"+v)
		out, err := tf.sClient(t, closeRequest, v, "-servername", "www.example.com", "-ign_eof", "-sess_out", sess)
		if err != nil || !strings.Contains(out, "New, TLSv1.") {
			t.Fatalf("s_client %s: %v\n%s", v, err, out)
		}
		out, err = tf.sClient(t, closeRequest, v, "-servername", "www.example.com", "-ign_eof", "-sess_in", sess)
		if err != nil || !strings.Contains(out, "Reused, TLSv1.") || !strings.Contains(out, "HTTP/1.1 200 OK") {
			t.Errorf("s_client %s -sess_in: not resumed (%v)\n%s", v, err, out)
		}
	}

	// TLS 1.1 is refused by the server (the client allows it here).
	out, err := tf.sClient(t, "", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "www.example.com")
	if err == nil || !strings.Contains(out, "alert protocol version") {
		t.Errorf("s_client -tls1_1: want the server's protocol_version alert (%v)\n%s", err, out)
	}
	// TLS 1.2 without ECDHE is refused.
	out, err = tf.sClient(t, "", "-tls1_2", "-cipher", "AES128-GCM-SHA256", "-servername", "www.example.com")
	if err == nil || !strings.Contains(out, "handshake failure") {
		t.Errorf("s_client -tls1_2 with RSA key exchange: want a handshake failure (%v)\n%s", err, out)
	}

	// curl: the same answer over HTTP/1.1 and HTTP/2, and the backend sees https.
	for _, proto := range []string{"--http1.1", "--http2"} {
		out, err := tf.curl(t, "www.example.com", proto)
		wantV := map[string]string{"--http1.1": "1.1", "--http2": "2"}[proto]
		if err != nil || !strings.Contains(out, `"X-Forwarded-Proto":["https"]`) || !strings.Contains(out, "http_version="+wantV) {
			t.Errorf("curl %s: %v\n%s", proto, err, out)
		}
	}
}

func TestMutualTLSWithOpenSSLAndCurl(t *testing.T) {
	needTool(t, "openssl", "curl")
	tf := newToolFixture(t, true)
	out, err := tf.curl(t, "www.example.com", "--cert", tf.client[0], "--key", tf.client[1])
	if err != nil || !strings.Contains(out, "X-Forwarded-Proto") {
		t.Errorf("curl with a client certificate signed by the CA: %v\n%s", err, out)
	}
	if out, err := tf.curl(t, "www.example.com"); err == nil {
		t.Errorf("curl without a client certificate succeeded\n%s", out)
	}
	if out, err := tf.curl(t, "www.example.com", "--cert", tf.wrong[0], "--key", tf.wrong[1]); err == nil {
		t.Errorf("curl with another CA's client certificate succeeded\n%s", out)
	}
	out, err = tf.sClient(t, closeRequest, "-servername", "www.example.com", "-ign_eof", "-cert", tf.client[0], "-key", tf.client[1])
	if err != nil || !strings.Contains(out, "HTTP/1.1 200 OK") {
		t.Errorf("s_client with a client certificate: %v\n%s", err, out)
	}
	for name, args := range map[string][]string{"none": nil, "another CA's": {"-cert", tf.wrong[0], "-key", tf.wrong[1]}} {
		out, _ := tf.sClient(t, closeRequest, append([]string{"-servername", "www.example.com", "-ign_eof"}, args...)...)
		if strings.Contains(out, "HTTP/1.1 200") {
			t.Errorf("s_client with %s client certificate got an answer\n%s", name, out)
		}
	}
}

// TestH2Spec runs the HTTP/2 conformance suite against the https listener:
// xlb's HTTP/2 server passes every case, so any failure fails the test.
func TestH2Spec(t *testing.T) {
	needTool(t, "h2spec")
	tf := newToolFixture(t, false)
	// A body longer than 5 bytes: the negative-window case is skipped
	// with less.
	out, err := run(t, "", "h2spec", "-h", "127.0.0.1", "-p", tf.port, "-t", "-k", "-o", "5", "-P", "/bytes?n=64")
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("h2spec: no summary (%v)\n%s", err, out)
	}
	t.Logf("h2spec: %s", m[0])
	_, failures, _ := strings.Cut(out, "Failures:")
	n := 0
	for _, f := range regexp.MustCompile(`× \d+: (.+)`).FindAllStringSubmatch(failures, -1) {
		n++
		t.Errorf("h2spec: %q failed", strings.TrimSpace(f[1]))
	}
	if strconv.Itoa(n) != m[4] {
		t.Errorf("h2spec: %s failed, %d listed\n%s", m[4], n, out)
	}
	if m[3] != "0" {
		t.Errorf("h2spec: %s skipped\n%s", m[3], out)
	}
}
