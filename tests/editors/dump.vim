" dump.vim — run by check_editors.py in `vim -Es`: writes each word of the current buffer
" with its syntax group ("LINE COL WORD GROUP") to $NNL_DUMP, then the filetype and any
" error message, and quits.
let s:out = []
for s:l in range(1, line('$'))
  let s:text = getline(s:l)
  let s:at = 0
  while 1
    let s:m = matchstrpos(s:text, '\<\h\w*\|\.\=\d[0-9.eE+-]*\|"[^"]*"\=\|#.*\|[-+*/^@<>=!]=\=', s:at)
    if s:m[1] < 0
      break
    endif
    let s:group = synIDattr(synID(s:l, s:m[1] + 1, 1), 'name')
    call add(s:out, s:l . ' ' . (s:m[1] + 1) . ' ' . s:m[0] . "\t" . (s:group == '' ? '-' : s:group))
    let s:at = s:m[2]
  endwhile
endfor
call add(s:out, 'filetype ' . &filetype)
call add(s:out, 'errmsg ' . v:errmsg)
call writefile(s:out, $NNL_DUMP)
qall!
