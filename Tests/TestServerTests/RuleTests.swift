import Testing

@testable import TestServer

@Suite struct RuleTests {
    @Test func everyBehaviourOfTheCatalogueParsesBackFromItsSyntax() throws {
        for behaviour in Misbehaviour.catalogue + [.none, .other(path: "/ConfigCom.cfg"), .stall(seconds: 2.5)] {
            #expect(try Misbehaviour(parsing: behaviour.syntax) == behaviour, "\(behaviour.syntax)")
        }
    }

    @Test func statusesArgumentsAndAliases() throws {
        #expect(try Misbehaviour(parsing: "404") == .status(404))
        #expect(try Misbehaviour(parsing: "599") == .status(599))
        #expect(try Misbehaviour(parsing: "stall") == .stall(seconds: 3600))
        #expect(try Misbehaviour(parsing: "stall:0.5") == .stall(seconds: 0.5))
        #expect(try Misbehaviour(parsing: "trickle") == .trickle(bytesPerSecond: 16))
        #expect(try Misbehaviour(parsing: "TRICKLE:100") == .trickle(bytesPerSecond: 100))
        #expect(try Misbehaviour(parsing: "auth") == .authForever)
    }

    @Test(arguments: [
        "200", "302", "600", "", "stall:-1", "stall:x", "trickle:0", "trickle:1.5", "404:2", "garbage:1", "other:",
        "other:relative", "teapot",
    ])
    func refusedBehavioursSayWhatIsAccepted(_ text: String) {
        #expect(throws: RuleError.self) { try Misbehaviour(parsing: text) }
    }

    @Test func ruleSyntaxAndErrors() throws {
        let rule = try Rule(parsing: "/Config*.cfg=close-mid-body")
        #expect(rule.pattern == "/Config*.cfg")
        #expect(rule.behaviour == .closeMidBody)
        #expect(rule.description == "/Config*.cfg=close-mid-body")
        #expect(try Rule(parsing: "*=503").behaviour == .status(503))
        for bad in ["/x.cfg", "=404", "x.cfg=404", "/x.cfg=nope"] {
            do {
                _ = try Rule(parsing: bad)
                Issue.record("\(bad) was accepted")
            } catch {
                #expect("\(error)".contains(bad.split(separator: "=").last.map(String.init) ?? bad), "\(error)")
            }
        }
    }

    @Test func globsMatchTheWholePath() throws {
        let rule = Rule(pattern: "/Config*.cfg", behaviour: .garbage)
        #expect(rule.matches("/Config0080F0C571EB.cfg"))
        #expect(rule.matches("/Config.cfg"))
        #expect(!rule.matches("/Config0080F0C571EB.cfg.enc"))
        #expect(!rule.matches("/prov/Config1.cfg"))
        #expect(Rule(pattern: "*", behaviour: .garbage).matches("/anything/at/all"))
        #expect(Rule(pattern: "/Config????????????.cfg", behaviour: .garbage).matches("/Config0080F0C571EB.cfg"))
        #expect(!Rule(pattern: "/Config????????????.cfg", behaviour: .garbage).matches("/ConfigCom.cfg"))
        #expect(Rule(pattern: "/a*b*c", behaviour: .garbage).matches("/aXbYbZc"))
        // No exponential backtracking on a hostile pattern.
        let long = "/" + String(repeating: "a", count: 5000)
        #expect(!Rule(pattern: "/" + String(repeating: "*a", count: 50) + "b", behaviour: .garbage).matches(long))
    }

    @Test func macRangesAndOtherPhonesFiles() throws {
        let path = "/Config0080F0C571EB.cfg"
        let range = try #require(ServedTree.macRange(in: path))
        #expect(path[range] == "0080F0C571EB")
        #expect(ServedTree.macRange(in: "/ConfigCom.cfg") == nil)
        #expect(ServedTree.macRange(in: "/0080F0C571EB0.cfg") == nil)  // 13 digits: not a MAC
    }
}
