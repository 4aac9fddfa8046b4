DROP TABLE lease_holders;
DROP TABLE session_leases;
DROP SEQUENCE session_lease_fence;
