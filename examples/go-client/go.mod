module opencode-server.example/go-client

go 1.19
