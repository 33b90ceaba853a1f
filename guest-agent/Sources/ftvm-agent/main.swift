// The ftvm guest agent: heartbeat, service supervision, host commands. See Agent.swift.
Agent.main()
