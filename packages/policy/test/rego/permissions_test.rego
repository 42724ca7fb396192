# The helper packages on their own.
package demo.permissions_test

import data.demo.agents
import data.demo.documents
import data.demo.users

test_user_name_parsing if {
	users.name("spiffe://demo.example.com/user/alice") == "alice"
	not users.name("spiffe://demo.example.com/agent/alice")
	not users.name("spiffe://demo.example.com/user/")
	not users.name("spiffe://demo.example.com.evil/user/alice")
	not users.name("https://demo.example.com/user/alice")
}

test_agent_name_parsing if {
	agents.name("spiffe://demo.example.com/agent/gpt4") == "gpt4"
	not agents.name("spiffe://demo.example.com/user/gpt4")
	not agents.name("spiffe://demo.example.com/ns/x/agent/gpt4")
}

test_demo_departments if {
	users.departments("alice") == {"engineering", "finance"}
	users.departments("bob") == {"finance", "admin"}
	users.departments("carol") == {"hr"}
	users.departments("nobody") == set()
}

test_demo_capabilities if {
	agents.capabilities("gpt4") == {"engineering", "finance"}
	agents.capabilities("claude") == {"engineering", "finance", "admin", "hr"}
	agents.capabilities("summarizer") == {"finance"}
	agents.capabilities("nobody") == set()
}

test_demo_documents if {
	documents.required("DOC-001") == {"engineering"}
	documents.required("DOC-002") == {"finance"}
	documents.required("DOC-003") == {"admin"}
	documents.required("DOC-004") == {"hr"}
	documents.required("DOC-005") == {"finance", "engineering"}
	documents.required("DOC-006") == {"admin", "finance"}
	documents.public("DOC-007")
	not documents.public("DOC-001")
	not documents.known("DOC-008")
}

test_grants_any_of if {
	documents.grants({"engineering"}, "DOC-005")
	documents.grants({"finance"}, "DOC-005")
	not documents.grants({"hr"}, "DOC-005")
	not documents.grants(set(), "DOC-001")
}
