// A throwaway self-signed certificate for 127.0.0.1 (valid until 2126), for tests of TLS paths:
// made with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500
// -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1`. It secures nothing.
export const SELF_SIGNED_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfqu+MOAsNNYrHmBB
oYl0wxo6GNllpxfKEcIGBHWihtuhRANCAASc0RnW4T3S9o+eZ/h8IjeLAm/nwxY1
h2ugPo51rSdWcjIfYfHRMHhJytnaX18whN0YKXJnCoqUqnSPelcgRLEr
-----END PRIVATE KEY-----
`

export const SELF_SIGNED_CERT = `-----BEGIN CERTIFICATE-----
MIIBkTCCATagAwIBAgIUMFN0dnxCzuFYJRNNE9Iwi7qhxc4wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTIwMjAyMTExNFoYDzIxMjYxMTA4
MDIxMTE0WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASc0RnW4T3S9o+eZ/h8IjeLAm/nwxY1h2ugPo51rSdWcjIfYfHRMHhJ
ytnaX18whN0YKXJnCoqUqnSPelcgRLEro2QwYjAdBgNVHQ4EFgQUoVLNevX8ySro
7akOr4dFu7EMKLcwHwYDVR0jBBgwFoAUoVLNevX8ySro7akOr4dFu7EMKLcwDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0kAMEYC
IQDQPPgqNcgBA5zAS1Tc12cxSwdmZxkrSO818TE9K4Wv4wIhAJKsU5ULBtu2I9NF
txGKku36F/xVAy/yW3SONDd4oUpS
-----END CERTIFICATE-----
`
