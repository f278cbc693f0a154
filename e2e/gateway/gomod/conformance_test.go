// Package gateway runs the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance,
// the version pinned in go.mod) against whatever controller serves the GatewayClass named by
// -gateway-class. Every option of the suite is a flag of the built test binary
// (-gateway-class, -conformance-profiles, -supported-features, -report-output, -run-test,
// -cleanup-base-resources, -conformance-options-file for the timeouts, ...): see
// e2e/gateway/test.sh and README.md.
package gateway

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}
