package failover

// Helpers for the tests in package failover_test, which run real nodes:
// they import node, which imports this package (through network), so
// they cannot be in package failover.
var (
	DialT     = dialT
	TestCtx   = testCtx
	WaitFor   = waitFor
	TestURL   = failoverURL
	FreeAddr  = freeAddr
	Logger    = testLogger
	WaitLong  = waitLong
	Receive   = receive
	NoMessage = noMessage
)

// Fast is the URL option tail for tests: addresses in order, short delays.
const Fast = fast
