module precinct.dev/identity-server-interop

go 1.24.0

require github.com/spiffe/go-spiffe/v2 v2.6.0

require (
	github.com/go-jose/go-jose/v4 v4.1.2 // indirect
	golang.org/x/net v0.41.0 // indirect
	golang.org/x/sys v0.33.0 // indirect
	golang.org/x/text v0.26.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20250707201910-8d1bb00bc6a7 // indirect
	google.golang.org/grpc v1.75.0 // indirect
	google.golang.org/protobuf v1.36.7 // indirect
)
