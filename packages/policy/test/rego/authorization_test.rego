# Unit tests for the decision, run by `opa test rego/ test/rego/ data/demo.json` (rego.test.ts
# runs them under `npm test`). Each deny has an allow beside it that differs in one field.
package demo.authorization_test

import data.demo.authorization

td := "spiffe://demo.example.com"

user(name) := concat("/", [td, "user", name])

agent(name) := concat("/", [td, "agent", name])

direct(name, doc) := {"person": user(name), "document": doc, "action": "read"}

delegated(person, ag, doc) := {"person": user(person), "agent": agent(ag), "document": doc, "action": "read"}

decide(request) := d if {
	d := authorization.decision with input as request
}

# --- direct access ---

test_direct_allowed_by_department if {
	d := decide(direct("alice", "DOC-001"))
	d.allow
	d.reason == "person_has_department"
	d.details.user_departments == ["engineering", "finance"]
	d.details.effective_permissions == ["engineering", "finance"]
	d.details.agent_capabilities == []
	d.details.required == ["engineering"]
}

test_direct_denied_without_department if {
	d := decide(direct("alice", "DOC-003"))
	not d.allow
	d.reason == "person_lacks_department"
	d.details.required == ["admin"]
}

test_any_of_required_departments if {
	decide(direct("bob", "DOC-005")).allow # finance is one of finance, engineering
	decide(direct("alice", "DOC-006")).allow # finance is one of admin, finance
	not decide(direct("carol", "DOC-005")).allow
}

test_public_document_for_any_known_person if {
	d := decide(direct("carol", "DOC-007"))
	d.allow
	d.reason == "public_document"
	d.details.required == []
}

# --- delegated access: the intersection ---

test_delegation_intersection_allows if {
	d := decide(delegated("alice", "gpt4", "DOC-001"))
	d.allow
	d.reason == "delegation_permits"
	d.details.effective_permissions == ["engineering", "finance"]
}

test_agent_lacking_capability_denies_what_the_person_may_read if {
	decide(direct("alice", "DOC-001")).allow
	d := decide(delegated("alice", "summarizer", "DOC-001"))
	not d.allow
	d.reason == "agent_lacks_capability"
	d.details.effective_permissions == ["finance"]
}

test_agent_capability_does_not_widen_the_person if {
	not decide(direct("alice", "DOC-004")).allow
	d := decide(delegated("alice", "claude", "DOC-004"))
	not d.allow
	d.reason == "person_lacks_department"
	d.details.agent_capabilities == ["admin", "engineering", "finance", "hr"]
	d.details.effective_permissions == ["engineering", "finance"]
}

test_delegated_public_document if {
	d := decide(delegated("carol", "summarizer", "DOC-007"))
	d.allow
	d.reason == "public_document"
	d.details.effective_permissions == []
}

# --- an agent without a person gets nothing, public documents included ---

test_agent_without_person_denied if {
	decide(delegated("bob", "claude", "DOC-003")).allow
	d := decide({"agent": agent("claude"), "document": "DOC-003", "action": "read"})
	not d.allow
	d.reason == "agent_without_person"
	d.details.effective_permissions == []
	d.details.agent_capabilities == ["admin", "engineering", "finance", "hr"]
}

test_agent_without_person_denied_public_document if {
	d := decide({"agent": agent("gpt4"), "document": "DOC-007", "action": "read"})
	not d.allow
	d.reason == "agent_without_person"
}

test_no_identity_denied if {
	d := decide({"document": "DOC-007", "action": "read"})
	not d.allow
	d.reason == "no_identity"
}

# --- identities must be exact SPIFFE IDs of the right kind in the trust domain ---

test_other_trust_domain_is_unknown if {
	d := decide({"person": "spiffe://elsewhere.example/user/alice", "document": "DOC-001", "action": "read"})
	not d.allow
	d.reason == "unknown_person"
	d.details.user_departments == []
}

test_agent_id_as_person_is_unknown if {
	d := decide({"person": agent("claude"), "document": "DOC-007", "action": "read"})
	d.reason == "unknown_person"
}

test_person_id_as_agent_is_unknown if {
	d := decide({"person": user("bob"), "agent": user("alice"), "document": "DOC-002", "action": "read"})
	not d.allow
	d.reason == "unknown_agent"
}

test_extra_path_segments_are_unknown if {
	d := decide({"person": concat("/", [user("alice"), "x"]), "document": "DOC-001", "action": "read"})
	d.reason == "unknown_person"
}

test_unknown_person_denied_public_document if {
	d := decide(direct("mallory", "DOC-007"))
	not d.allow
	d.reason == "unknown_person"
}

test_unknown_agent_denied if {
	d := decide(delegated("alice", "rogue", "DOC-007"))
	not d.allow
	d.reason == "unknown_agent"
}

test_unknown_document_denied if {
	d := decide(direct("alice", "DOC-999"))
	not d.allow
	d.reason == "unknown_document"
}

test_only_read_is_permitted if {
	d := decide({"person": user("alice"), "document": "DOC-001", "action": "delete"})
	not d.allow
	d.reason == "action_not_permitted"
}

# Callers of the OPA server are not all this package's TypeScript: missing fields fail closed.
test_missing_action_denied if {
	d := decide({"person": user("alice"), "document": "DOC-007"})
	not d.allow
	d.reason == "action_not_permitted"
}

test_missing_document_denied if {
	d := decide({"person": user("alice"), "action": "read"})
	not d.allow
	d.reason == "unknown_document"
}

test_non_string_identity_is_unknown if {
	d := decide({"person": {"id": "alice"}, "document": "DOC-007", "action": "read"})
	d.reason == "unknown_person"
}

# --- the data is OPA data: a deployment supplies its own ---

deployment := {
	"trust_domain": "corp.example",
	"users": {"dana": {"departments": ["legal"]}},
	"agents": {"scribe": {"capabilities": ["legal"]}},
	"documents": {
		"L-1": {"required_departments": ["legal"]},
		"broken": {"required_department": ""},
	},
}

test_deployment_data if {
	request := {"person": "spiffe://corp.example/user/dana", "agent": "spiffe://corp.example/agent/scribe", "document": "L-1", "action": "read"}
	d := authorization.decision with input as request with data.precinct as deployment
	d.allow
	d.reason == "delegation_permits"
	d.details.effective_permissions == ["legal"]
}

test_demo_people_unknown_under_deployment_data if {
	d := authorization.decision with input as direct("alice", "DOC-007") with data.precinct as deployment
	d.reason == "unknown_person"
}

test_document_without_required_departments_is_not_public if {
	request := {"person": "spiffe://corp.example/user/dana", "document": "broken", "action": "read"}
	d := authorization.decision with input as request with data.precinct as deployment
	not d.allow
	d.reason == "unknown_document"
}
