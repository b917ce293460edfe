# Makes a copy of vigil.proto with new fields, as a user extending the schema
# would: a string, a money field, an optional double and an enum in
# Transaction, a string in AccountEvent. The package is renamed so the copy
# links beside the real schema.
file(READ ${IN} text)
set(before "${text}")
string(REPLACE "package vigil.v1;" "package vigiltest.v1;" text "${text}")
string(REPLACE "  map<string, string> attrs = 23;"
"  map<string, string> attrs = 23;
  string risk_segment = 100;
  int64 fee_minor = 101;
  oneof _ip_risk { double ip_risk = 102; }
  Tier tier = 103;" text "${text}")
string(REPLACE "  map<string, string> attrs = 11;"
"  map<string, string> attrs = 11;
  string browser = 100;" text "${text}")
string(APPEND text "
enum Tier {
  TIER_UNSPECIFIED = 0;
  GOLD = 1;
  SILVER = 2;
}
")
string(FIND "${text}" "risk_segment" a)
string(FIND "${text}" "browser" b)
if(a EQUAL -1 OR b EQUAL -1)
  message(FATAL_ERROR "extend_proto.cmake: vigil.proto changed shape; update the anchors")
endif()
file(WRITE ${OUT} "${text}")
