"""py-spiffe against the identity server: fetch an X.509-SVID, the X.509 bundles and a
JWT-SVID, have the server validate the JWT-SVID, print what was seen as one JSON line."""
import json
import sys

from spiffe import WorkloadApiClient


def main() -> None:
    address, audience = sys.argv[1], sys.argv[2]
    client = WorkloadApiClient(socket_path=address)
    try:
        svid = client.fetch_x509_svid(timeout=20)
        bundles = client.fetch_x509_bundles(timeout=20)
        jwt = client.fetch_jwt_svid(audience={audience}, timeout=20)
        validated = client.validate_jwt_svid(jwt.token, audience, timeout=20)
        bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        print(json.dumps({
            "x509Id": str(svid.spiffe_id),
            "chainLength": len(svid.cert_chain),
            "bundleAuthorities": len(bundle.x509_authorities) if bundle else 0,
            "jwtId": str(jwt.spiffe_id),
            "validatedId": str(validated.spiffe_id),
        }))
    finally:
        client.close()


if __name__ == "__main__":
    main()
