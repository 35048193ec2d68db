// HTTP Digest and Basic authentication, and an authenticating proxy, against a real Apache httpd
// (spec §3: USR_PROV_SVR_AUTH_ID / _PASSWORD, or user:password@ in the URL).

import Foundation
import Testing
import VPhoneTesting

@testable import Transport

@Suite("CurlTransport with HTTP authentication (Apache)")
struct CurlTransportAuthTests {
    static let user = "phone"
    static let password = "http-s3cret"

    enum Scheme: String, CaseIterable, CustomTestStringConvertible {
        case digest, basic
        var testDescription: String { rawValue }
    }

    /// An Apache serving `hello.cfg` openly, behind Digest and behind Basic.
    final class Server: @unchecked Sendable {
        let root: String
        let apache: ApacheServer

        init(password: String = CurlTransportAuthTests.password, forwardProxy: Bool = false) throws {
            root = try makeServedDirectory("vphone-apache", files: ["hello.cfg": helloBody])
            apache = try ApacheServer(
                root: root,
                digestUser: CurlTransportAuthTests.user,
                digestPassword: password,
                realm: "KX-UTG300 provisioning",
                forwardProxy: forwardProxy
            )
        }

        deinit {
            apache.stop()
            try? FileManager.default.removeItem(atPath: root)
        }

        func url(_ scheme: Scheme, _ path: String) -> String {
            (scheme == .digest ? apache.digestBaseURL : apache.basicBaseURL) + "/" + path
        }
    }

    @Test("the right credentials fetch the file; Apache logs the user", arguments: Scheme.allCases)
    func succeeds(scheme: Scheme) async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let response = try #require(
            await transport.fetch(
                request(server.url(scheme, "hello.cfg")) {
                    $0.username = Self.user
                    $0.password = Self.password
                }
            ).success()
        )
        #expect(response.status == 200)
        #expect(response.body == helloBody)
        #expect(response.contentType == "text/plain")
        // libcurl asks without credentials first and answers the challenge the server sends. (Apache
        // logs each request when its connection is done with, so the lines may come in either order.)
        let log = server.apache.accessLog(atLeast: 2)
        #expect(log.count == 2)
        let request = "\"GET /\(scheme.rawValue)/hello.cfg HTTP/1.1\""
        #expect(log.contains { $0.hasPrefix("127.0.0.1 - [") && $0.contains("\(request) 401 ") })
        #expect(
            log.contains {
                $0.hasPrefix("127.0.0.1 \(Self.user) [") && $0.contains("\(request) 200 45 \"\(phoneAgent)\"")
            }
        )
    }

    @Test("one pooled handle alternating credentials keeps none of the last transfer's", arguments: Scheme.allCases)
    func oneHandleKeepsNoCredentialsOfTheLastTransfer(scheme: Scheme) async throws {
        let server = try await offPool { try Server() }
        // One loop, one transfer at a time: every fetch runs on the same easy handle.
        let transport = try CurlTransport(loops: 1, maxInFlightPerLoop: 1)
        defer { transport.shutdown() }
        let url = server.url(scheme, "hello.cfg")
        let login: (inout FetchRequest) -> Void = {
            $0.username = Self.user
            $0.password = Self.password
        }
        // The same credentials three times in a row: every fetch asks without them first and answers the challenge,
        // as a phone does; none answers a challenge from the last transfer (libcurl keeps a handle's authentication
        // state, a Digest nonce included, until it is reset).
        for _ in 0..<3 { #expect(await transport.fetch(request(url, login)).success()?.status == 200) }
        let log = server.apache.accessLog(atLeast: 6)
        #expect(log.filter { $0.hasPrefix("127.0.0.1 - [") && $0.contains(" 401 ") }.count == 3)
        #expect(log.filter { $0.hasPrefix("127.0.0.1 \(Self.user) [") && $0.contains(" 200 ") }.count == 3)
        // The open copy: credentials sent where no challenge comes leave no trace of one on the handle, so only
        // the request's own credentials can keep it from being reused configured.
        let open = server.apache.baseURL + "/hello.cfg"
        for round in 0..<2 {
            // With credentials, then none: a 401, not the file; then a user without its password.
            #expect(await transport.fetch(request(url, login)).success()?.status == 200, "round \(round)")
            #expect(await transport.fetch(request(open, login)).success()?.status == 200, "round \(round)")
            let anonymous = await transport.fetch(request(url)).failure()
            #expect(anonymous?.kind == .httpStatus, "round \(round)")
            #expect(anonymous?.httpStatus == 401, "round \(round)")
            #expect(
                await transport.fetch(request(url) { $0.username = Self.user }).failure()?.kind == .auth,
                "round \(round)"
            )
        }
    }

    @Test("a wrong password is auth with HTTP 401, and the password is never shown", arguments: Scheme.allCases)
    func wrongPassword(scheme: Scheme) async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(server.url(scheme, "hello.cfg")) {
                    $0.username = Self.user
                    $0.password = "wrong-password"
                }
            ).failure()
        )
        #expect(failure.kind == .auth)
        #expect(failure.httpStatus == 401)
        #expect(failure.message.contains("127.0.0.1:\(server.apache.port)"))
        #expect(!failure.message.contains("wrong-password"))
    }

    @Test("no credentials is an httpStatus failure with HTTP 401", arguments: Scheme.allCases)
    func noCredentials(scheme: Scheme) async throws {
        let server = try await offPool { try Server() }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(await transport.fetch(request(server.url(scheme, "hello.cfg"))).failure())
        #expect(failure.kind == .httpStatus)
        #expect(failure.httpStatus == 401)
        #expect(failure.message.contains("no credentials were given"))

        // The open location needs none.
        #expect(await transport.fetch(request(server.apache.baseURL + "/hello.cfg")).success()?.body == helloBody)
    }

    @Test(
        "credentials in the URL work, percent-encoded characters included, and never appear in a failure",
        arguments: Scheme.allCases
    )
    func credentialsInURL(scheme: Scheme) async throws {
        // '@', ':' and '/' must be percent-encoded in a URL's userinfo; libcurl decodes them.
        let password = "p@ss:w/rd-9"
        let encoded = "p%40ss%3Aw%2Frd-9"
        let server = try await offPool { try Server(password: password) }
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        func withUserinfo(_ userinfo: String, _ path: String) -> String {
            server.url(scheme, path).replacingOccurrences(of: "http://", with: "http://\(userinfo)@")
        }

        let response = await transport.fetch(request(withUserinfo("\(Self.user):\(encoded)", "hello.cfg")))
        #expect(response.success()?.body == helloBody)

        let wrong = try #require(
            await transport.fetch(request(withUserinfo("\(Self.user):Wr0ng%40pw", "hello.cfg"))).failure()
        )
        #expect(wrong.kind == .auth)
        #expect(wrong.httpStatus == 401)
        for secret in ["Wr0ng%40pw", "Wr0ng@pw", "\(Self.user):"] {
            #expect(!wrong.message.contains(secret), "\(secret) in \(wrong.message)")
        }

        // The right login, but a missing file: a 404 whose message must not leak the password either.
        let missing = try #require(
            await transport.fetch(request(withUserinfo("\(Self.user):\(encoded)", "missing.cfg"))).failure()
        )
        #expect(missing.httpStatus == 404)
        for secret in [encoded, password, "\(Self.user):"] {
            #expect(!missing.message.contains(secret), "\(secret) in \(missing.message)")
        }
    }

    // MARK: - Proxy

    @Test("an authenticating proxy: none is 407 httpStatus, wrong is auth, right ones pass (fields or proxy URL)")
    func proxyCredentials() async throws {
        let origin = try Site()
        let proxy = try await offPool { try Server(forwardProxy: true) }
        let transport = try CurlTransport()
        defer { transport.shutdown() }
        let url = origin.url("hello.cfg")

        let anonymous = try #require(
            await transport.fetch(request(url) { $0.proxy = proxy.apache.proxyAddress }).failure()
        )
        #expect(anonymous.kind == .httpStatus)
        #expect(anonymous.httpStatus == 407)
        #expect(anonymous.message.contains("no proxy credentials"))

        let wrong = try #require(
            await transport.fetch(
                request(url) {
                    $0.proxy = proxy.apache.proxyAddress
                    $0.proxyUsername = Self.user
                    $0.proxyPassword = "wrong-proxy-pw"
                }
            ).failure()
        )
        #expect(wrong.kind == .auth)
        #expect(wrong.httpStatus == 407)
        #expect(!wrong.message.contains("wrong-proxy-pw"))

        let good = await transport.fetch(
            request(url) {
                $0.proxy = proxy.apache.proxyAddress
                $0.proxyUsername = Self.user
                $0.proxyPassword = Self.password
            }
        )
        #expect(good.success()?.body == helloBody)

        let inProxyURL = await transport.fetch(
            request(url) { $0.proxy = "\(Self.user):\(Self.password)@\(proxy.apache.proxyAddress)" }
        )
        #expect(inProxyURL.success()?.body == helloBody)

        let wrongInProxyURL = try #require(
            await transport.fetch(request(url) { $0.proxy = "\(Self.user):bad-pw@\(proxy.apache.proxyAddress)" })
                .failure()
        )
        #expect(wrongInProxyURL.kind == .auth)
        #expect(!wrongInProxyURL.message.contains("bad-pw"))

        // The proxy, not the client, fetched from the origin.
        let proxied = proxy.apache.accessLog(atLeast: 1)
        #expect(
            proxied.contains { $0.hasPrefix("127.0.0.1 \(Self.user) [") && $0.contains("\"GET \(url) HTTP/1.1\" 200") }
        )
        #expect(try origin.log(atLeast: 2).count == 2)
    }

    @Test("server and proxy credentials are separate: a 401 behind a proxy is the server's")
    func serverAuthThroughProxy() async throws {
        let server = try await offPool { try Server() }
        let proxy = try await offPool { try Server(forwardProxy: true) }
        let transport = try CurlTransport()
        defer { transport.shutdown() }

        let failure = try #require(
            await transport.fetch(
                request(server.url(.digest, "hello.cfg")) {
                    $0.proxy = proxy.apache.proxyAddress
                    $0.proxyUsername = Self.user
                    $0.proxyPassword = Self.password
                }
            ).failure()
        )
        #expect(failure.kind == .httpStatus)
        #expect(failure.httpStatus == 401)

        let response = await transport.fetch(
            request(server.url(.digest, "hello.cfg")) {
                $0.proxy = proxy.apache.proxyAddress
                $0.proxyUsername = Self.user
                $0.proxyPassword = Self.password
                $0.username = Self.user
                $0.password = Self.password
            }
        )
        #expect(response.success()?.body == helloBody)
    }
}
