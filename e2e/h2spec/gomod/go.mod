// Wrapper module: builds h2spec from github.com/summerwind/h2spec v2.2.1 (its last release).
// h2spec has no go.mod of its own (it used dep), so a bare `go install ...@v2.2.1+incompatible`
// resolves its dependencies (golang.org/x/net/http2 among them: the framer h2spec speaks
// through) to whatever is newest that day. Here they are required at fixed versions, with
// go.sum; to move them, `go get -tool github.com/summerwind/h2spec/cmd/h2spec@VERSION` and
// `go get golang.org/x/net@VERSION` in this directory, then rerun the suite.
module weir.local/e2e/h2spec

go 1.26.0

tool github.com/summerwind/h2spec/cmd/h2spec

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/summerwind/h2spec v2.2.1+incompatible // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
