// A go-spiffe v2 peer for the interop tests. It gets SPIFFE_ENDPOINT_SOCKET from the test
// and does one thing per run:
//
//	fetch                 print the default X.509-SVID's SPIFFE ID
//	server                serve mTLS on 127.0.0.1:0, print PORT=<p>, write "<peer id>\n" to each client
//	client <addr>         dial <addr> with mTLS, print PEER=<server id> and the line the server wrote
//	validate <audience>   validate the JWT-SVID read from stdin against the Workload API JWT bundles
//
// and, with no go-spiffe and no Workload API, as a plain crypto/tls peer of the kind the
// SPIFFE SDK must interoperate with (static files, standard hostname verification):
//
//	stdtls-get <url> <servername> <ca.pem> [<cert.pem> <key.pem>]
//	    GET <url> with tls.Config{Certificates, RootCAs, ServerName}; Go then sends the
//	    certificate only if its issuer is among the CAs the server advertised. Prints
//	    STATUS=<code> and BODY=<body>, or REFUSED <error>.
//	stdtls-server <ca.pem> <cert.pem> <key.pem>
//	    serve TLS on 127.0.0.1:0 requiring a client certificate verified against <ca.pem>
//	    (tls.RequireAndVerifyClientCert), print PORT=<p>, write "<client URI SAN>\n".
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: peer fetch|server|client <addr>|validate <audience>")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	switch os.Args[1] {
	case "stdtls-get":
		return stdTLSGet(ctx, os.Args[2:])
	case "stdtls-server":
		return stdTLSServer(os.Args[2:])
	case "validate":
		if len(os.Args) < 3 {
			return fmt.Errorf("validate needs an audience")
		}
		token, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		bundles, err := workloadapi.FetchJWTBundles(ctx)
		if err != nil {
			return err
		}
		svid, err := jwtsvid.ParseAndValidate(strings.TrimSpace(string(token)), bundles, []string{os.Args[2]})
		if err != nil {
			fmt.Println("REJECTED", err)
			return nil
		}
		fmt.Println("SUB=" + svid.ID.String())
		return nil
	}

	source, err := workloadapi.NewX509Source(ctx)
	if err != nil {
		return err
	}
	defer source.Close()

	switch os.Args[1] {
	case "fetch":
		svid, err := source.GetX509SVID()
		if err != nil {
			return err
		}
		fmt.Println("ID=" + svid.ID.String())
	case "server":
		cfg := tlsconfig.MTLSServerConfig(source, source, tlsconfig.AuthorizeAny())
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Printf("PORT=%d\n", ln.Addr().(*net.TCPAddr).Port)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return err
			}
			go serve(conn.(*tls.Conn))
		}
	case "client":
		if len(os.Args) < 3 {
			return fmt.Errorf("client needs an address")
		}
		cfg := tlsconfig.MTLSClientConfig(source, source, tlsconfig.AuthorizeAny())
		conn, err := tls.Dial("tcp", os.Args[2], cfg)
		if err != nil {
			fmt.Println("REJECTED", err)
			return nil
		}
		defer conn.Close()
		state := conn.ConnectionState()
		id, err := spiffeIDOf(state)
		if err != nil {
			return err
		}
		fmt.Println("PEER=" + id.String())
		line, _ := bufio.NewReader(conn).ReadString('\n')
		fmt.Println("LINE=" + strings.TrimSpace(line))
	default:
		return fmt.Errorf("unknown mode %q", os.Args[1])
	}
	return nil
}

func spiffeIDOf(state tls.ConnectionState) (spiffeid.ID, error) {
	if len(state.PeerCertificates) == 0 || len(state.PeerCertificates[0].URIs) != 1 {
		return spiffeid.ID{}, fmt.Errorf("no peer SPIFFE ID")
	}
	return spiffeid.FromURI(state.PeerCertificates[0].URIs[0])
}

func serve(conn *tls.Conn) {
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return
	}
	id, err := spiffeIDOf(conn.ConnectionState())
	if err != nil {
		return
	}
	_, _ = conn.Write([]byte(id.String() + "\n"))
}

func certPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificates in %s", path)
	}
	return pool, nil
}

func stdTLSGet(ctx context.Context, args []string) error {
	if len(args) != 3 && len(args) != 5 {
		return fmt.Errorf("usage: stdtls-get <url> <servername> <ca.pem> [<cert.pem> <key.pem>]")
	}
	roots, err := certPool(args[2])
	if err != nil {
		return err
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: args[1]}
	if len(args) == 5 {
		cert, err := tls.LoadX509KeyPair(args[3], args[4])
		if err != nil {
			return err
		}
		// The static form, no GetClientCertificate: Go picks a certificate whose chain has an
		// issuer among the server's acceptable CAs, and sends none when nothing matches.
		cfg.Certificates = []tls.Certificate{cert}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		fmt.Println("REFUSED", err)
		return nil
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		fmt.Println("REFUSED", err)
		return nil
	}
	fmt.Printf("STATUS=%d\nBODY=%s\n", res.StatusCode, strings.TrimSpace(string(body)))
	return nil
}

func stdTLSServer(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: stdtls-server <ca.pem> <cert.pem> <key.pem>")
	}
	clientCAs, err := certPool(args[0])
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(args[1], args[2])
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    clientCAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("PORT=%d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func(c *tls.Conn) {
			defer c.Close()
			if err := c.Handshake(); err != nil {
				fmt.Fprintln(os.Stderr, "handshake:", err)
				return
			}
			state := c.ConnectionState()
			if len(state.PeerCertificates) == 0 || len(state.PeerCertificates[0].URIs) != 1 {
				return
			}
			_, _ = c.Write([]byte(state.PeerCertificates[0].URIs[0].String() + "\n"))
		}(conn.(*tls.Conn))
	}
}
