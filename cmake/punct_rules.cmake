# punct_rules(TOKENS_DEF OUT) — lexer.re's rules for operators and delimiters, one for each
# PUNCT line of compiler/tokens.def: `PUNCT(PLUSEQ, "+=")` becomes `"+=" { TOK(TK_PLUSEQ); }`
# in OUT, which lexer.re includes (`!include "punct.re";`). Run when configuring, and again
# whenever TOKENS_DEF changes; OUT is written only when its text changes.
function(punct_rules def out)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${def})
  file(READ ${def} text)
  string(REPLACE "[" "<lb>" text "${text}") # brackets and ';' are list syntax
  string(REPLACE "]" "<rb>" text "${text}")
  string(REPLACE ";" "<sc>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(rules "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^PUNCT\\(([A-Z]+), (\"[^\"]+\")\\)$")
      string(APPEND rules "${CMAKE_MATCH_2} { TOK(TK_${CMAKE_MATCH_1}); }\n")
    endif()
  endforeach()
  string(REPLACE "<lb>" "[" rules "${rules}")
  string(REPLACE "<rb>" "]" rules "${rules}")
  string(REPLACE "<sc>" ";" rules "${rules}")
  set(old "")
  if(EXISTS ${out})
    file(READ ${out} old)
  endif()
  if(NOT old STREQUAL rules)
    file(WRITE ${out} "${rules}")
  endif()
endfunction()
