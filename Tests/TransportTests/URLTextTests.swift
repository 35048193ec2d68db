// Scheme detection and password redaction, without a server.

import Testing

@testable import Transport

@Suite("URL text")
struct URLTextTests {
    @Test(
        "redactedURL strips user:password@ and nothing else",
        arguments: [
            ("http://id:pass@host/x.cfg", "http://host/x.cfg"),
            ("https://id:p%40ss@host:8443/a/b?c=d@e", "https://host:8443/a/b?c=d@e"),
            ("ftp://user@host/file", "ftp://host/file"),
            ("http://a:b@c@host/x", "http://host/x"),
            ("http://host/path@not-userinfo", "http://host/path@not-userinfo"),
            ("tftp://10.0.0.1/{MAC}.cfg", "tftp://10.0.0.1/{MAC}.cfg"),
            ("id:pass@host/x.cfg", "host/x.cfg"),
            ("", ""),
        ]
    )
    func redaction(url: String, expected: String) {
        #expect(CurlTransport.redactedURL(url) == expected)
    }

    @Test(
        "scheme",
        arguments: [
            ("HTTP://h/", "http"), ("https://h", "https"), ("tftp://h/f", "tftp"), ("file:///x", "file"),
            ("svn+ssh://h", "svn+ssh"), ("/relative", nil), ("h/x", nil), ("1http://h", nil), ("", nil),
        ] as [(String, String?)]
    )
    func scheme(url: String, expected: String?) {
        #expect(URLText.scheme(of: url) == expected)
    }

    @Test("host and credentials")
    func hostAndCredentials() throws {
        #expect(URLText.host(of: "http://id:pw@prov.example.com:8080/x") == "prov.example.com")
        #expect(URLText.hostAndPort(of: "http://id:pw@prov.example.com:8080/x") == "prov.example.com:8080")
        #expect(URLText.host(of: "http://[::1]:80/x") == "[::1]")
        let credentials = try #require(URLText.credentials(in: "http://id:p%40ss@host/"))
        #expect(credentials.user == "id")
        #expect(credentials.password == "p@ss")
    }

    @Test("passwords are scrubbed from messages")
    func scrub() {
        #expect(CurlTransfer.scrub("login as id:hunter2 failed", secrets: ["hunter2"]) == "login as id:*** failed")
        #expect(CurlTransfer.scrub("a b", secrets: ["a"]) == "a b")
    }

    @Test("every failure kind keeps its wire name")
    func kindNames() {
        #expect(
            FetchFailure.Kind.allCases.map(\.rawValue) == [
                "dns", "connect", "tls", "http_status", "timeout", "too_large", "protocol_refused", "redirect", "auth",
                "not_found", "transfer", "other",
            ]
        )
    }
}
