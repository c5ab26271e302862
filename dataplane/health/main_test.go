package health

import (
	"testing"

	"go.uber.org/goleak"
)

// Every checker, subscription and test server goroutine must be gone when
// the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
