// A third-party Workload API client for the identity server's interop test: go-spiffe v2
// fetches an X.509-SVID and a JWT-SVID, verifies both against the bundles it fetched, asks the
// server to validate the JWT-SVID, and prints what it saw as one JSON line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type result struct {
	X509ID          string   `json:"x509Id"`
	X509Hint        string   `json:"x509Hint"`
	DNSNames        []string `json:"dnsNames"`
	BundleAuthority int      `json:"bundleAuthorities"`
	JWTID           string   `json:"jwtId"`
	JWTAudience     []string `json:"jwtAudience"`
	ValidatedID     string   `json:"validatedId"`
}

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", step, err)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 3 {
		fail("usage", fmt.Errorf("interop <unix:///socket> <audience>"))
	}
	addr, audience := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		fail("connect", err)
	}
	defer client.Close()

	x509ctx, err := client.FetchX509Context(ctx)
	if err != nil {
		fail("FetchX509Context", err)
	}
	svid := x509ctx.DefaultSVID()
	if _, _, err := x509svid.Verify(svid.Certificates, x509ctx.Bundles); err != nil {
		fail("x509svid.Verify", err)
	}
	bundle, err := x509ctx.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		fail("bundle", err)
	}

	jwt, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
	if err != nil {
		fail("FetchJWTSVID", err)
	}
	jwtBundles, err := client.FetchJWTBundles(ctx)
	if err != nil {
		fail("FetchJWTBundles", err)
	}
	parsed, err := jwtsvid.ParseAndValidate(jwt.Marshal(), jwtBundles, []string{audience})
	if err != nil {
		fail("jwtsvid.ParseAndValidate", err)
	}
	validated, err := client.ValidateJWTSVID(ctx, jwt.Marshal(), audience)
	if err != nil {
		fail("ValidateJWTSVID", err)
	}

	out, _ := json.Marshal(result{
		X509ID:          svid.ID.String(),
		X509Hint:        svid.Hint,
		DNSNames:        svid.Certificates[0].DNSNames,
		BundleAuthority: len(bundle.X509Authorities()),
		JWTID:           parsed.ID.String(),
		JWTAudience:     parsed.Audience,
		ValidatedID:     validated.ID.String(),
	})
	fmt.Println(string(out))
}
